"""The storage contract: what a session asks of its database, in the terms of the domain.

:class:`~history_store.HistorySession` validates and encodes items, decodes what it reads,
decides which item starts a turn, and skips corrupt rows; a :class:`Backend` only stores and
returns rows. It never parses an item and never calls back into the session: every argument
is a session id, encoded items, a seq, a limit or the time.

There are three backends, each a module of this folder that depends only on this one:
``sqlite.py`` (an SQLite file, through the stdlib driver), ``postgres.py`` (asyncpg) and
``core.py`` (SQLAlchemy Core, for in-memory SQLite). All three write the same values, which
``tests/test_history_paths.py`` checks by running one script of operations on each.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Protocol

from ..errors import InvalidArgumentError

Rows = list[tuple[int, str]]
"""``(seq, item JSON)`` rows of one session, oldest first."""


@dataclass(frozen=True, slots=True)
class Appended:
    """Where a batch went: the session's counters after it."""

    last_seq: int
    turn: int
    """The session's latest turn, which the batch's last item belongs to."""


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """How one turn ended, for ``hs_turns``; ``None`` where it is not known."""

    turn: int
    status: str
    agent: str | None = None
    model: str | None = None
    requests: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    estimated_input_tokens: int | None = None
    window_first_seq: int | None = None


@dataclass(frozen=True, slots=True)
class RecentRows:
    """The newest history rows that fit a number of tokens (:meth:`Backend.read_recent`)."""

    rows: list[tuple[int, str, int, int]]
    """``(seq, item JSON, turn, tokens)``, oldest first."""
    turn_before: int | None
    """The turn of the stored row just before the first (``None``: there is none), so the
    reader can tell a turn cut at the window's edge."""
    complete: bool = True
    """Whether every history row after ``after`` is in ``rows`` (they all fit)."""
    skipped: int = 0
    """Tokens the running total counts from the window's start on that are not in ``rows``:
    items of failed or blocked turns, removed items. A reader asks again with that much
    more room, so they do not take the room of the history that is sent."""


@dataclass(frozen=True, slots=True)
class Summary:
    """A summary of a session's items ``first_seq..last_seq`` (``hs_summaries``)."""

    first_seq: int
    last_seq: int
    text: str
    tokens: int
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EncodedItem:
    """One item ready to insert: the stored JSON and the columns derived from it."""

    item_json: str
    role: str | None
    item_type: str
    text: str | None
    starts_turn: bool
    tokens: int = 0
    """The item's estimated token count (``hs_items.tokens``)."""


class Backend(Protocol):
    """Where a store's sessions keep their items (see the module docstring).

    Every write is one transaction: it happens whole or not at all, also when the caller is
    cancelled (the write under way runs to its end, then ``CancelledError`` is raised).

    The reads return the session's history: rows of a turn recorded as ``failed`` or
    ``blocked`` (``tables.HIDDEN_STATUSES``) stay stored for audit but are not history, so
    they are left out.
    """

    async def read_all(self, session_id: str) -> Rows:
        """Every history row of the session, oldest first; ``[]`` for an unknown session."""
        ...

    async def read_tail(self, session_id: str, limit: int, *, before: int | None = None) -> Rows:
        """The latest ``limit`` history rows of the session (those with ``seq < before``
        when given), oldest first."""
        ...

    async def append(
        self, session_id: str, items: Sequence[EncodedItem], now: datetime
    ) -> Appended:
        """Store ``items`` after the session's latest item, in one transaction, creating the
        session if needed and counting the items and the turns they start into its counters.
        ``items`` is never empty."""
        ...

    async def read_recent(
        self, session_id: str, tokens: int, *, after: int | None = None
    ) -> RecentRows:
        """The newest rows whose running total (``hs_items.cumulative_tokens``) spans at most
        ``tokens``, history rows only (only those with ``seq > after`` when given), found
        with one index lookup on the running total: the cost does not grow with the
        history. What the span counts but the rows lack is :attr:`RecentRows.skipped`."""
        ...

    async def latest_summary(self, session_id: str) -> Summary | None:
        """The session's newest summary, or ``None``."""
        ...

    async def add_summary(
        self, session_id: str, summary: Summary, *, previous_last_seq: int
    ) -> bool:
        """Store ``summary`` (``created_at`` set) if the session's newest summary still ends
        at ``previous_last_seq`` (``0``: there is none); ``False``, storing nothing, when
        another writer added one first, so no stretch of history is summarized twice."""
        ...

    async def recent_usage(self, session_id: str, limit: int) -> list[tuple[int, int]]:
        """``(estimated input tokens, reported input tokens)`` of the session's latest
        ``limit`` turns that recorded both, oldest first: the calibration."""
        ...

    async def turn_of(self, session_id: str, seq: int) -> int | None:
        """The turn of the item at ``seq``; ``None`` if there is no such item."""
        ...

    async def record_turns(self, session_id: str, records: Sequence[TurnRecord]) -> None:
        """Write how turns of the session ended (``hs_turns``), in one transaction.

        A turn recorded before is updated: its status, agent, model, usage and end time are
        replaced (a value of ``None`` keeps the one stored), its start time kept. Nothing is
        written for a session that does not exist.
        """
        ...

    async def remove(self, session_id: str, seq: int, now: datetime) -> bool:
        """Delete the item at ``seq`` and count it out; ``False`` if it is not there (another
        caller removed it first).

        The session's turn count goes back by one when the item was the first of the
        session's latest turn (:func:`first_of_turn`), so the next user input takes that turn
        number again (and that turn's ``hs_turns`` row goes with it); ``last_seq`` never goes
        back.
        """
        ...

    async def clear(self, session_id: str) -> None:
        """Delete the session and every item of it."""
        ...

    async def close(self) -> None:
        """Close every connection; the backend is not used again."""
        ...

    async def get_metadata(self, session_id: str) -> dict[str, Any] | None:
        """The session's metadata object (``{}`` if it has none), or ``None`` if there is no
        such session. Raises :class:`InvalidArgumentError` for stored metadata that is not an
        object (:func:`metadata_object`)."""
        ...

    async def update_metadata(
        self, session_id: str, values: Mapping[str, Any], now: datetime
    ) -> dict[str, Any]:
        """Merge ``values`` into the session's metadata (:func:`merged_metadata`) in one
        transaction, creating the session (with no items) if needed; returns the result."""
        ...

    async def create_session(
        self, session_id: str, metadata: Mapping[str, Any], now: datetime
    ) -> None:
        """Create the session, with no items and ``metadata``, unless it exists (then it is
        left as it is)."""
        ...


def recent_rows(
    rows: Sequence[Sequence[Any]],
    turn_before: int | None,
    start: Sequence[Any] | None,
    after: int | None,
) -> RecentRows:
    """The :class:`RecentRows` of ``rows`` (``(seq, item, turn, tokens)``) read after the
    window's start row ``start`` (``(seq, running total, session total, tokens, hidden)``;
    ``None``: the whole history fit).

    The rows span ``session total - running total`` tokens of the running total; what of
    that they lack is skipped. A start row that is itself never sent (a failed turn's) is
    skipped too: it only marks where the room ran out.
    """
    found = [(int(r[0]), str(r[1]), int(r[2]), int(r[3] or 0)) for r in rows]
    if start is None or int(start[0]) <= (after or 0):
        return RecentRows(rows=found, turn_before=turn_before)
    span = int(start[2]) - int(start[1]) + (int(start[3] or 0) if start[4] else 0)
    skipped = span - sum(tokens for _, _, _, tokens in found)
    return RecentRows(rows=found, turn_before=turn_before, complete=False, skipped=skipped)


SUMMARY_FIELDS = tuple(field.name for field in fields(Summary))
"""``hs_summaries``' columns after ``session_id``, in the order of :class:`Summary`."""
TURN_FIELDS = tuple(field.name for field in fields(TurnRecord))
"""``hs_turns``' columns after ``session_id``, in the order of :class:`TurnRecord`."""


def _as_stored(value: Any) -> Any:
    return value


def row_values(
    session_id: str,
    record: Summary | TurnRecord,
    stamp: Callable[[datetime], Any] = _as_stored,
) -> tuple[Any, ...]:
    """The ``hs_summaries`` or ``hs_turns`` row of ``record``: ``session_id``, then its
    fields in order (:data:`SUMMARY_FIELDS`, :data:`TURN_FIELDS`), each time as ``stamp``
    stores it (SQLite: text)."""
    values = (getattr(record, field.name) for field in fields(record))
    return (session_id, *(stamp(v) if isinstance(v, datetime) else v for v in values))


def first_of_turn(turn: int, turn_below: int | None) -> bool:
    """Whether a row of ``turn`` started it, given the turn of the row just below it
    (``None``: no row below). Items before the first user input are turn 0, which no row
    starts."""
    return turn > 0 and turn_below != turn


def numbered(
    items: Sequence[EncodedItem], *, last_seq: int, turn_count: int, cumulative_tokens: int = 0
) -> Iterator[tuple[int, int, int, EncodedItem]]:
    """``(seq, turn, cumulative tokens, item)`` for each item of a batch.

    ``last_seq``, ``turn_count`` and ``cumulative_tokens`` are the session's counters after
    the batch was counted in (what the counters upsert returns), so the batch takes the seq
    range, and the stretch of the running token total, that end there.
    """
    seq = last_seq - len(items)
    turn = turn_count - sum(1 for item in items if item.starts_turn)
    cumulative = cumulative_tokens - sum(item.tokens for item in items)
    for item in items:
        seq += 1
        turn += item.starts_turn
        cumulative += item.tokens
        yield seq, turn, cumulative, item


def metadata_object(session_id: str, stored: Any) -> dict[str, Any]:
    """Stored metadata (parsed) as the object the metadata methods read and merge: ``{}``
    for none. Other JSON (an export file may carry any) is refused, not guessed at."""
    if stored is None:
        return {}
    if not isinstance(stored, dict):
        raise InvalidArgumentError(
            f"the metadata of session {session_id!r} is a JSON {type(stored).__name__}, not an "
            "object (it came from an imported file), so it cannot be read or merged as "
            "key/value pairs; `history-store sessions` shows it as stored"
        )
    return stored


def merged_metadata(session_id: str, stored: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """The session's metadata after an update: the stored object with each key of ``values``
    set (added or replaced; other keys kept; a value is replaced whole, never merged)."""
    return {**metadata_object(session_id, stored), **values}


def metadata_json(metadata: Mapping[str, Any]) -> str:
    """The text stored for a metadata object: the JSON every backend writes (SQLAlchemy's
    serializer in ``_engine.dump_json`` writes the same), non-ASCII text kept readable."""
    return json.dumps(metadata, ensure_ascii=False)
