"""A budgeted session's window: the newest summary and the newest whole turns that fit.

:func:`read_window` is what ``HistorySession.get_items()`` returns under a
:class:`~history_store.budget.context.ContextBudget`, with what the runner needs to trim it
further (each item's tokens, turn and seq) and the session's calibration ratio. It costs the
same however long the history: the summary, the calibration and the window's first row are
each one indexed lookup (``backends.base.Backend.read_recent``), read again only when
failed turns or removed items inside the window took some of its room.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._items import CORRUPT, load_items, load_or_skip
from .backends.base import Backend, Summary
from .budget.context import ContextBudget, room_for, summary_message, whole_turns
from .budget.tokens import CALIBRATION_WINDOW, calibration_ratio

_REREADS = 4
"""The most times a window is read again for rows it skipped (each failed turn in it can
cost one; after that the window is only smaller than it could be)."""


@dataclass
class Window:
    """What the next request carries of a session's history, oldest first."""

    items: list[Any] = field(default_factory=list)
    """The summary message (if any), then the history items."""
    tokens: list[int] = field(default_factory=list)
    """Each item's estimated tokens (uncalibrated)."""
    turns: list[int] = field(default_factory=list)
    """Each item's turn (``-1`` for the summary)."""
    seqs: list[int] = field(default_factory=list)
    """Each item's seq (``0`` for the summary)."""
    summary: Summary | None = None
    """The summary sent, when there is one and it fits."""
    ratio: float = 1.0
    """The session's calibration ratio: server-reported input tokens per estimated one."""

    @property
    def history_start(self) -> int:
        """Index of the first history item (after the summary message, if any)."""
        return 1 if self.summary is not None else 0

    @property
    def first_seq(self) -> int | None:
        """The seq of the oldest history item in the window, ``None`` when there is none."""
        return self.seqs[self.history_start] if len(self.seqs) > self.history_start else None

    def drop_tail(self, count: int) -> None:
        """Remove the last ``count`` items."""
        if count:
            for values in (self.items, self.tokens, self.turns, self.seqs):
                del values[-count:]


async def read_window(
    backend: Backend,
    session_id: str,
    budget: ContextBudget,
) -> Window:
    """The window for the next request of ``session_id`` under ``budget``.

    The newest summary, when it fits at all, comes first and is charged to the budget; then
    the newest rows whose stored token counts fit what is left (calibrated by the session's
    recent turns), without a turn cut at the edge. A corrupt row is skipped with a warning.
    """
    counter = budget.token_counter()
    ratio = calibration_ratio(await backend.recent_usage(session_id, CALIBRATION_WINDOW))
    room = room_for(budget.limit, ratio)
    window = Window(ratio=ratio)
    summary = await backend.latest_summary(session_id)
    if summary is not None:
        message = summary_message(summary.text)
        cost = counter.count_item(message)
        if cost <= room:
            room -= cost
            window.summary = summary
            window.items.append(message)
            window.tokens.append(cost)
            window.turns.append(-1)
            window.seqs.append(0)
    after = summary.last_seq if summary is not None else None
    recent = await backend.read_recent(session_id, room, after=after)
    asked = room
    for _ in range(_REREADS):
        # Failed turns and removed items count in the running total but are not sent: ask
        # for that much more, so they do not take the room of older turns that fit. The
        # rows' own tokens still stay within `room` (what is skipped only grows with the
        # span).
        if recent.complete or room + recent.skipped <= asked:
            break
        asked = room + recent.skipped
        recent = await backend.read_recent(session_id, asked, after=after)
    rows = whole_turns(recent.rows, recent.turn_before)
    parsed = load_items([item_json for _, item_json, _, _ in rows])
    for index, (seq, item_json, turn, tokens) in enumerate(rows):
        item = parsed[index] if parsed is not None else load_or_skip(session_id, seq, item_json)
        if item is CORRUPT:
            continue
        window.items.append(item)
        window.tokens.append(tokens if tokens is not None else counter.count_item(item))
        window.turns.append(turn)
        window.seqs.append(seq)
    return window
