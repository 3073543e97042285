"""Session history as a Chat Completions model can take it.

A session shared with a Responses agent can hold items Chat Completions has no message for
(``web_search_call``, ``computer_call``, ``mcp_call``, ``item_reference``, ``compaction``...).
The SDK's converter raises ``UserError`` on each of them, which would fail every later turn of
a Chat Completions agent on that session. The filter here leaves them out of what is sent, and
only that: they stay stored, and a Responses agent reading the session still gets them.
"""

from __future__ import annotations

import inspect
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from agents.items import TResponseInputItem
from agents.memory import SessionInputCallback
from agents.models.chatcmpl_converter import Converter

logger = logging.getLogger("history_store")


def chat_completions_accepts(item: object) -> bool:
    """True if the SDK's Chat Completions converter turns ``item`` into a message.

    Mirrors the converter's own dispatch (``Converter.items_to_messages``) with its own
    ``maybe_*`` tests, so it follows the SDK: anything the converter would reject as an
    unhandled item type, an ``item_reference``, a ``compaction`` item or a tool output without
    ``call_id`` gives False.
    """
    if not isinstance(item, dict):
        return False
    if Converter.maybe_function_tool_call_output(item):
        return item.get("call_id") is not None
    return bool(
        Converter.maybe_easy_input_message(item)
        or Converter.maybe_input_message(item)
        or Converter.maybe_response_output_message(item)
        or Converter.maybe_file_search_call(item)
        or Converter.maybe_function_tool_call(item)
        or Converter.maybe_reasoning_message(item)
    )


def _item_type(item: object) -> str:
    kind = item.get("type") if isinstance(item, dict) else None
    return kind if isinstance(kind, str) else type(item).__name__


def filter_history_for_chat(
    history: Sequence[TResponseInputItem], session_id: str
) -> list[TResponseInputItem]:
    """``history`` without the items a Chat Completions request cannot carry.

    Leaves out what :func:`chat_completions_accepts` rejects, and tool outputs whose call is
    not in ``history`` (a session ``limit`` or ``pop_item`` can cut a call from its output;
    Chat Completions refuses a tool message that answers no call). Logs what it left out at
    debug level. The objects kept are the ones given, so the SDK still recognises them as
    history and does not store them again.
    """
    kept = [item for item in history if chat_completions_accepts(item)]
    call_ids = {
        item.get("call_id") for item in kept if Converter.maybe_function_tool_call(item) is not None
    }
    kept = [
        item
        for item in kept
        if Converter.maybe_function_tool_call_output(item) is None
        or item.get("call_id") in call_ids
    ]
    if len(kept) < len(history):
        kept_ids = {id(item) for item in kept}
        dropped = Counter(_item_type(item) for item in history if id(item) not in kept_ids)
        logger.debug(
            "session %r: not sending %d stored item(s) a Chat Completions model cannot take "
            "(%s); they stay in the session",
            session_id,
            len(history) - len(kept),
            ", ".join(f"{kind} x{count}" for kind, count in sorted(dropped.items())),
        )
    return kept


def is_retry_of_unanswered_input(
    history: Sequence[TResponseInputItem], new_items: Sequence[TResponseInputItem]
) -> bool:
    """True when ``new_items`` are exactly the last items of ``history``: a retried input.

    The SDK stores a run's input before it calls the model, so when that call fails the input
    stays stored with nothing after it, and running the same input again would store it (and
    send it) a second time. A retry reuses the stored copy instead. An input that got an
    answer is followed by it, so saying the same thing again ("yes", "yes") is a new turn.
    (Reliability issue 7: ``tests/test_reliability_failed_runs.py``, ``docs/reliability.md``.)
    """
    count = len(new_items)
    return 0 < count <= len(history) and list(history[-count:]) == list(new_items)


def chat_history_callback(
    session_id: str, callback: SessionInputCallback | None
) -> SessionInputCallback:
    """A ``session_input_callback`` that filters history for Chat Completions first.

    Then it hands the filtered history and the new items to ``callback`` (the caller's own, if
    any), or appends the new items to it.
    """

    async def combine(
        history: list[TResponseInputItem], new_items: list[TResponseInputItem]
    ) -> list[TResponseInputItem]:
        kept = filter_history_for_chat(history, session_id)
        if callback is None:
            # A retried input is already the tail of `kept`: returning only history objects
            # makes the SDK store nothing new for it. A caller's own callback decides itself.
            if is_retry_of_unanswered_input(history, new_items):
                return kept
            return kept + new_items
        combined: Any = callback(kept, new_items)
        if inspect.isawaitable(combined):
            combined = await combined
        result: list[TResponseInputItem] = combined
        return result

    return combine
