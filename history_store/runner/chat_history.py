"""What a Chat Completions model is sent.

A session shared with a Responses agent can hold items Chat Completions has no message for
(``web_search_call``, ``computer_call``, ``mcp_call``, ``item_reference``, ``compaction``...).
The SDK's converter raises ``UserError`` on each of them, which would fail every later turn of
a Chat Completions agent on that session; and Chat Completions refuses a tool message that
answers no call, or a call left without its answer. :func:`model_input_filter` leaves those
out of each request to a Chat Completions model, as the SDK's ``call_model_input_filter``,
and only there: they stay stored, stay in the run, and a Responses agent in the same run (a
handoff) or a later one still gets them.
"""

from __future__ import annotations

import inspect
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from agents import Agent, RunConfig
from agents.exceptions import UserError
from agents.items import TResponseInputItem
from agents.models.chatcmpl_converter import Converter
from agents.run_config import CallModelData, CallModelInputFilter, ModelInputData

from .._run_turns import RunTurns
from ..budget.context import ContextBudget
from ..errors import ServerManagedStateError
from ._fit import SchemaCosts, fit_request
from .models import resolve_model

logger = logging.getLogger("history_store")

_CHAT_ROLES = frozenset({"user", "assistant", "system", "developer"})


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


def _is_plain_message(item: object) -> bool:
    """A message of a role Chat Completions has, in a form its converter always takes."""
    return (
        isinstance(item, dict)
        and item.get("type", "message") == "message"
        and item.get("role") in _CHAT_ROLES
        and isinstance(item.get("content"), (str, list))
    )


def _item_type(item: object) -> str:
    kind = item.get("type") if isinstance(item, dict) else None
    return kind if isinstance(kind, str) else type(item).__name__


def filter_history_for_chat(
    history: Sequence[TResponseInputItem], where: str
) -> list[TResponseInputItem]:
    """``history`` without the items a Chat Completions request cannot carry.

    Leaves out what :func:`chat_completions_accepts` rejects, tool outputs whose call is not
    in ``history`` (a session ``limit`` or ``pop_item`` can cut a call from its output) and
    calls whose output is not (a run cut short between the two): Chat Completions refuses
    both. Logs what it left out at debug level, naming ``where``. The objects kept are the
    ones given.
    """
    if all(_is_plain_message(item) for item in history):
        return list(history)  # what most turns hold: nothing to leave out, no pairs to check
    kept = [item for item in history if chat_completions_accepts(item)]
    call_ids = {
        item.get("call_id") for item in kept if Converter.maybe_function_tool_call(item) is not None
    }
    answered = {
        item.get("call_id")
        for item in kept
        if Converter.maybe_function_tool_call_output(item) is not None
    }
    kept = [
        item
        for item in kept
        if (
            Converter.maybe_function_tool_call_output(item) is None
            or item.get("call_id") in call_ids
        )
        and (Converter.maybe_function_tool_call(item) is None or item.get("call_id") in answered)
    ]
    if len(kept) < len(history):
        kept_ids = {id(item) for item in kept}
        dropped = Counter(_item_type(item) for item in history if id(item) not in kept_ids)
        logger.debug(
            "%s: not sending %d item(s) a Chat Completions model cannot take (%s); they are kept",
            where,
            len(history) - len(kept),
            ", ".join(f"{kind} x{count}" for kind, count in sorted(dropped.items())),
        )
    return kept


class _ChatAgents:
    """Whether each agent of a run resolves to a Chat Completions model, asked once each."""

    def __init__(self, run_config: RunConfig) -> None:
        self._run_config = run_config
        self._answers: dict[int, tuple[Agent[Any], bool]] = {}

    def __call__(self, agent: Agent[Any]) -> bool:
        known = self._answers.get(id(agent))
        if known is None or known[0] is not agent:
            known = (agent, resolve_model(agent, self._run_config).chat_completions)
            self._answers[id(agent)] = known
        return known[1]


def model_input_filter(
    run_config: RunConfig,
    callers_filter: CallModelInputFilter | None,
    refusals: list[ServerManagedStateError],
    *,
    budget: ContextBudget | None = None,
    plan: RunTurns | None = None,
) -> CallModelInputFilter:
    """A ``call_model_input_filter`` run before every model call of a run.

    The caller's own filter (``callers_filter``) runs first; then, with a ``budget``, the
    request is cut to fit it (``_fit``; ``plan`` holds the session's window and notes what
    was sent); then, when the calling agent resolves to Chat Completions under
    ``run_config``, what it cannot take is left out (:func:`filter_history_for_chat`). A
    refusal met by a run nested in this one (an agent used as a tool, whose refusal the SDK
    would turn into a tool error the model reads) is raised here, before the next request,
    and ends the run.
    """
    is_chat = _ChatAgents(run_config)
    counter = budget.token_counter() if budget is not None else None
    schema_costs = SchemaCosts(counter) if counter is not None else None

    async def filter_input(data: CallModelData[Any]) -> ModelInputData:
        if refusals:
            raise refusals[0]
        model_data = data.model_data
        if callers_filter is not None:
            updated: Any = callers_filter(data)
            if inspect.isawaitable(updated):
                updated = await updated
            if not isinstance(updated, ModelInputData):
                raise UserError("call_model_input_filter must return a ModelInputData instance")
            model_data = updated
        if budget is not None and counter is not None and schema_costs is not None:
            model_data = fit_request(model_data, data.agent, budget, plan, counter, schema_costs)
        if is_chat(data.agent):
            kept = filter_history_for_chat(model_data.input, f"agent {data.agent.name!r}")
            if len(kept) != len(model_data.input):
                model_data = ModelInputData(input=kept, instructions=model_data.instructions)
        return model_data

    return filter_input
