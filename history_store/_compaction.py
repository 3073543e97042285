"""Folding the turns that left a session's window into its running summary.

:func:`compact` reads the window (``_window``), takes the history between the newest
summary's end and the window's start (the turns that left it, failed and blocked ones never
included), and has the budget's summarizer fold them, a piece at a time, into new rows of
``hs_summaries``: each row's ``first_seq..last_seq`` is the stretch it newly folded in, so
the rows of a session never overlap and no turn is summarized twice. Nothing is deleted.

A long backlog (a budget turned on for a session that is already long) is folded from its
newest :data:`MAX_CHUNKS` pieces only; older turns stay stored, unsummarized, and the first
summary's ``first_seq`` says where it starts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._items import CORRUPT, extract_text, is_user_input, load_or_skip
from ._time import utcnow
from ._window import read_window
from .backends.base import Backend, Summary
from .budget.context import ContextBudget, Summarizes, room_for, summary_message
from .budget.tokens import CHARS_PER_TOKEN, TokenCounter

logger = logging.getLogger("history_store")

MAX_CHUNKS = 4
"""The most summarizing requests one compaction makes per round."""

_ROUNDS = 3
_PAGE = 256


@dataclass(frozen=True, slots=True)
class _Departed:
    seq: int
    item: dict[str, Any]
    tokens: int


async def compact(
    backend: Backend,
    session_id: str,
    budget: ContextBudget,
    summarizer: Summarizes,
    *,
    sent_from: int | None = None,
) -> list[Summary]:
    """Summarize what left the window of ``session_id``; the new summaries, oldest first.

    ``sent_from`` is the oldest stored seq the last request actually carried (the runner
    may trim further than the window, for instructions and tools); the turns before it have
    left too. A summary changes the window (it takes room), so this repeats until nothing
    more has left, at most a few rounds.
    """
    counter = budget.token_counter()
    written: list[Summary] = []
    for _ in range(_ROUNDS):
        window = await read_window(backend, session_id, budget)
        boundary = _boundary(window.first_seq, sent_from)
        previous = await backend.latest_summary(session_id)
        after = previous.last_seq if previous is not None else 0
        if boundary is None or boundary <= after + 1:
            break
        limit = summarizer.max_input_tokens or budget.limit
        # Room for one piece: the previous summary and the summarizer's own instructions and
        # framing come out of it.
        previous_cost = counter.count_text(previous.text) if previous is not None else 0
        fixed = previous_cost + summarizer.overhead_tokens(counter)
        piece = room_for(limit, window.ratio) - fixed
        if piece <= 0:
            logger.warning(
                "session %r: turns have left the window but are not summarized: the previous "
                "summary (%d tokens) and the summarizer's instructions (%d) leave no room "
                "within %d tokens; give the Summarizer a larger max_input_tokens, or "
                "instructions asking for a shorter summary",
                session_id,
                previous_cost,
                fixed - previous_cost,
                limit,
            )
            break
        departed = await _departed(
            backend, session_id, after, boundary, counter, cap=piece * MAX_CHUNKS
        )
        if not departed:
            break
        new = await _fold(
            backend, session_id, summarizer, counter, previous, _pieces(departed, piece), piece
        )
        written += new
        if not new:
            break
    return written


def _boundary(window_first: int | None, sent_from: int | None) -> int | None:
    """The first seq still in the window: what the window starts at, or what the last
    request started at when that is later."""
    if window_first is None:
        return sent_from
    return max(window_first, sent_from) if sent_from is not None else window_first


async def _departed(
    backend: Backend,
    session_id: str,
    after: int,
    boundary: int,
    counter: TokenCounter,
    *,
    cap: int,
) -> list[_Departed]:
    """The history items with ``after < seq < boundary``, oldest first, read from the
    newest back; when they come to more than ``cap`` tokens, only the newest whole turns
    within it."""
    found: list[_Departed] = []
    total, before = 0, boundary
    while True:
        rows = await backend.read_tail(session_id, _PAGE, before=before)
        for seq, item_json in reversed(rows):
            if seq <= after:
                return found[::-1]
            item = load_or_skip(session_id, seq, item_json)
            if item is CORRUPT:
                continue
            tokens = counter.count_item(item)
            total += tokens
            found.append(_Departed(seq, item, tokens))
            if total > cap:
                return _from_turn_start(found[::-1])
        if len(rows) < _PAGE:
            return found[::-1]
        before = rows[0][0]


def _from_turn_start(departed: list[_Departed]) -> list[_Departed]:
    """``departed`` from its first turn start on, so a cut-short backlog's first summary
    begins at a turn."""
    start = 0
    while start < len(departed) and not is_user_input(departed[start].item):
        start += 1
    return departed[start:]


def _pieces(departed: Sequence[_Departed], room: int) -> list[list[_Departed]]:
    """``departed`` in consecutive pieces of at most ``room`` tokens (an item over it alone
    is one piece, shortened when it is sent)."""
    pieces: list[list[_Departed]] = []
    current: list[_Departed] = []
    used = 0
    for entry in departed:
        if current and used + entry.tokens > room:
            pieces.append(current)
            current, used = [], 0
        current.append(entry)
        used += entry.tokens
    if current:
        pieces.append(current)
    return pieces


def _shortened(entry: _Departed, room: int) -> dict[str, Any]:
    """The item as the summarizer gets it: whole, or its text cut to fit ``room``."""
    if entry.tokens <= room:
        return entry.item
    text = extract_text(entry.item) or ""
    keep = max(room * CHARS_PER_TOKEN // 2, 0)
    role = entry.item.get("role") or entry.item.get("type") or "tool"
    return {
        "role": str(role),
        "content": f"{text[:keep]} [... {len(text) - keep} more characters not shown]",
    }


async def _fold(
    backend: Backend,
    session_id: str,
    summarizer: Summarizes,
    counter: TokenCounter,
    previous: Summary | None,
    pieces: list[list[_Departed]],
    room: int,
) -> list[Summary]:
    """One summarizing request per piece, each stored before the next is asked for."""
    written: list[Summary] = []
    text = previous.text if previous is not None else None
    after = previous.last_seq if previous is not None else 0
    for piece in pieces:
        draft = await summarizer.summarize(text, [_shortened(entry, room) for entry in piece])
        if not draft.text.strip():
            break  # a model that answered nothing: keep the previous summary
        summary = Summary(
            first_seq=piece[0].seq,
            last_seq=piece[-1].seq,
            text=draft.text.strip(),
            tokens=counter.count_item(summary_message(draft.text.strip())),
            model=draft.model,
            input_tokens=draft.input_tokens,
            output_tokens=draft.output_tokens,
            total_tokens=draft.total_tokens,
            created_at=utcnow(),
        )
        if not await backend.add_summary(session_id, summary, previous_last_seq=after):
            break  # another writer summarized this stretch first
        written.append(summary)
        text, after = summary.text, summary.last_seq
    return written
