"""A session's token window, read or compacted: ``history-store show --window`` and
``history-store compact``.

Both go through the session (``HistorySession.window`` and ``compact``), so what they show
and write is exactly what a budgeted run reads. The budget is not stored in the database:
these take it as arguments (``max_input_tokens``, ``reserve_output_tokens``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agents import Model, OpenAIChatCompletionsModel, RunConfig

from .._items import extract_text, item_type_of
from ..backends.base import Summary
from ..budget.context import ContextBudget
from ..budget.tokens import calibrated
from ..runner.summarizer import DEFAULT_INSTRUCTIONS, Summarizer
from ._open import Database, writing
from .chat import client_for
from .inspect import require_session

__all__ = ["WindowItem", "WindowView", "window", "compact"]


@dataclass(frozen=True)
class WindowItem:
    """One item the next request carries: ``seq`` 0 and ``turn`` -1 for the summary."""

    seq: int
    turn: int
    role: str | None
    item_type: str
    tokens: int
    text: str | None


@dataclass(frozen=True)
class WindowView:
    """What the next request of a session carries of its history under a budget.

    ``tokens`` is the items' estimate, ``calibrated_tokens`` that times ``ratio`` (the
    session's calibration), which must be within ``limit`` with the request's instructions,
    tools and new input; ``summary_first_seq``..``summary_last_seq`` the stretch the newest
    summary newly folded in (``None``: no summary is sent); ``stored_items`` every item
    stored, sent or not.
    """

    session_id: str
    limit: int
    ratio: float
    tokens: int
    calibrated_tokens: int
    items: list[WindowItem]
    summary_first_seq: int | None
    summary_last_seq: int | None
    summary_created_at: datetime | None
    stored_items: int


async def window(
    session_id: str,
    url: Database = None,
    *,
    max_input_tokens: int,
    reserve_output_tokens: int = 0,
) -> WindowView:
    """The window :class:`~history_store.ContextBudget` ``(max_input_tokens,
    reserve_output_tokens)`` gives the next request of ``session_id``.

    Raises :class:`SessionNotFoundError` for a session that is not there.
    """
    budget = ContextBudget(max_input_tokens, reserve_output_tokens=reserve_output_tokens)
    # A look, not a change: the schema is checked, never upgraded (as `show` does).
    async with writing(url, create=False, migrate="check") as store:
        engine = await store.engine()
        async with engine.connect() as connection:
            row = await require_session(connection, session_id)
        read = await store.session(session_id).window(budget)
    items = []
    for index, item in enumerate(read.items):
        summary = index < read.history_start
        items.append(
            WindowItem(
                seq=read.seqs[index],
                turn=read.turns[index],
                role="system" if summary else item.get("role"),
                item_type="summary" if summary else item_type_of(item),
                tokens=read.tokens[index],
                text=(read.summary.text if read.summary else None)
                if summary
                else extract_text(item),
            )
        )
    total = sum(read.tokens)
    return WindowView(
        session_id=session_id,
        limit=budget.limit,
        ratio=read.ratio,
        tokens=total,
        calibrated_tokens=calibrated(total, read.ratio),
        items=items,
        summary_first_seq=read.summary.first_seq if read.summary else None,
        summary_last_seq=read.summary.last_seq if read.summary else None,
        summary_created_at=read.summary.created_at if read.summary else None,
        stored_items=int(row.item_count),
    )


async def compact(
    session_id: str,
    url: Database = None,
    *,
    model: str | Model,
    max_input_tokens: int,
    reserve_output_tokens: int = 0,
    base_url: str | None = None,
    api_key: str | None = None,
    instructions: str | None = None,
) -> list[Summary]:
    """Summarize what has left the window of ``session_id`` now; the new summaries.

    ``model`` writes them: an Agents SDK ``Model``, or a Chat Completions model name on
    ``base_url`` (an OpenAI-compatible server, with tracing off; default OpenAI, with
    ``OPENAI_API_KEY``). A failed model request raises the ``openai`` client's error, and
    nothing is written.
    The window is the one ``ContextBudget(max_input_tokens, reserve_output_tokens)`` gives.
    """
    client = client_for(base_url, api_key) if isinstance(model, str) else None
    try:
        if client is not None:
            model = OpenAIChatCompletionsModel(str(model), client)
        # A summary of a conversation is the conversation: no trace of it goes to OpenAI
        # when the model is on a server of the caller's own.
        run_config = RunConfig(tracing_disabled=True) if base_url is not None else None
        summarizer = Summarizer(
            model,
            instructions=instructions if instructions is not None else DEFAULT_INSTRUCTIONS,
            run_config=run_config,
        )
        budget = ContextBudget(
            max_input_tokens, reserve_output_tokens=reserve_output_tokens, summarizer=summarizer
        )
        async with writing(url, create=False) as store:
            engine = await store.engine()
            async with engine.connect() as connection:
                await require_session(connection, session_id)
            return await store.session(session_id).compact(budget=budget)
    finally:
        if client is not None:
            await client.close()
