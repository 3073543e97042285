"""The session operations every storage path implements, as one typed interface.

``HistorySession`` validates and encodes; a :class:`SessionHistory` stores and reads. There
are three: ``backends.sqlite.SQLiteHistory`` (an SQLite file, stdlib driver),
``backends.postgres.PostgresHistory`` (PostgreSQL, asyncpg) and ``backends.core.CoreHistory``
(SQLAlchemy Core: in-memory SQLite). All three write the same values; the session tests run
on the first two.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from .._items import Decode, EncodedItem, Rows, latest_readable

NO_SEQ_ABOVE = 2**63 - 1
"""Above every seq (a signed 64-bit column): where a newest-first scan starts."""


class SessionHistory(Protocol):
    async def read_all(self, session_id: str) -> Rows:
        """Every row of the session, oldest first."""
        ...

    async def read_tail(self, session_id: str, count: int) -> Rows:
        """The latest ``count`` rows of the session, oldest first."""
        ...

    async def append(self, session_id: str, encoded: Sequence[EncodedItem], now: datetime) -> None:
        """Store the batch after the session's latest item, in one transaction (all or
        nothing), creating the session row if needed and counting the items and turns in."""
        ...

    async def pop(
        self,
        session_id: str,
        decode: Decode,
        starts_turn: Callable[[Any], bool],
        window: int,
        now: datetime,
    ) -> Any:
        """Delete and return the latest item that ``decode`` can read (rows it cannot are
        skipped and kept), reading ``window`` rows at a time; ``None`` if there is none."""
        ...

    async def clear(self, session_id: str) -> None:
        """Delete the session and every item of it."""
        ...


async def pop_latest_readable(
    fetch_below: Callable[[int], Awaitable[Sequence[Any]]],
    forget: Callable[[int, int | None], Awaitable[None]],
    decode: Decode,
    starts_turn: Callable[[Any], bool],
    window: int,
) -> Any:
    """The pop loop of the async paths, inside their write transaction: read ``window`` rows
    ``(seq, item JSON, turn)`` below a seq, newest first (``fetch_below``), until one decodes;
    ``forget(seq, turn)`` deletes it (``turn`` given when the item started that turn)."""
    below = NO_SEQ_ABOVE
    while True:
        rows = await fetch_below(below)
        found = latest_readable(rows, decode)
        if found is not None:
            seq, turn, item = found
            await forget(seq, turn if starts_turn(item) else None)
            return item
        if len(rows) < window:
            return None
        below = rows[-1][0]
