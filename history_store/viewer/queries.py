"""What the viewer reads, and the one read-only engine it reads through.

A :class:`Reader` opens the database once with ``tools/_open.reading`` (SQLite
``mode=ro`` plus ``query_only``; PostgreSQL ``default_transaction_read_only``), on the first
request or when the app starts, and keeps it until the app stops. Every statement is built
with SQLAlchemy and every value from a request is a bound parameter.

A session's items are read one page at a time by keyset on the primary key
``(session_id, seq)``, so a page of a 10k-item session reads ``limit`` rows whatever its
position, and memory does not grow with the session.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .. import tables
from ..tools._open import Database, reading
from ..tools.inspect import ItemRow, SessionInfo, item_rows, require_session, session_info
from . import turn_data
from .turn_data import ExtraTables, Summary, TurnInfo

__all__ = ["Reader", "SessionView", "session_view", "MAX_PAGE_ITEMS"]

MAX_PAGE_ITEMS = 1000
"""The most items one session page holds, whatever ``limit`` asks for."""

_items = tables.items


class Reader:
    """The viewer's read-only engine on one database, opened once and kept.

    ``start()`` opens it (the app's lifespan calls it, so a missing database fails at
    start-up); a request that comes first opens it too. ``stop()`` disposes of it.
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        self._stack: AsyncExitStack | None = None
        self._engine: AsyncEngine | None = None
        self._extras: ExtraTables | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            if self._engine is not None:
                return
            stack = AsyncExitStack()
            try:
                engine = await stack.enter_async_context(reading(self._database))
                async with engine.connect() as connection:
                    self._extras = await turn_data.probe(connection)
            except BaseException:
                await stack.aclose()
                raise
            self._stack, self._engine = stack, engine

    async def stop(self) -> None:
        async with self._lock:
            stack, self._stack, self._engine = self._stack, None, None
            if stack is not None:
                await stack.aclose()

    @property
    def extras(self) -> ExtraTables:
        """Which of ``hs_turns`` / ``hs_summaries`` the database has (after :meth:`start`)."""
        if self._extras is None:
            raise RuntimeError("the viewer's reader is not started")
        return self._extras

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection, in a transaction rolled back at the end."""
        if self._engine is None:
            await self.start()
        assert self._engine is not None
        async with self._engine.connect() as connection:
            yield connection


@dataclass(frozen=True)
class SessionView:
    """One page of a session: its row, ``items`` in seq order, what is known of the turns on
    the page (``turns``, empty without ``hs_turns``) and the summaries that end on it.

    ``previous_before`` and ``next_after`` are the cursors of the neighbouring pages
    (``None`` at either end)."""

    session: SessionInfo
    items: list[ItemRow]
    turns: dict[int, TurnInfo]
    summaries: list[Summary]
    extras: ExtraTables
    previous_before: int | None
    next_after: int | None
    last_seq: int


async def _first_seq_of_turn(connection: AsyncConnection, session_id: str, turn: int) -> int | None:
    statement = sa.select(sa.func.min(_items.c.seq)).where(
        _items.c.session_id == session_id, _items.c.turn >= turn
    )
    value = await connection.scalar(statement)
    return int(value) if value is not None else None


async def _any_item(connection: AsyncConnection, condition: sa.ColumnElement[bool]) -> bool:
    statement = sa.select(_items.c.seq).where(condition).limit(1)
    return (await connection.scalar(statement)) is not None


async def _page_rows(
    connection: AsyncConnection,
    session_id: str,
    *,
    after: int | None,
    before: int | None,
    limit: int,
) -> tuple[list[ItemRow], int | None, int | None]:
    """``limit`` items after ``after`` (or just before ``before``), with the neighbouring
    pages' cursors."""
    in_session = _items.c.session_id == session_id
    turns = tables.turns
    statement = (
        sa.select(_items, turns.c.status)
        .select_from(
            _items.outerjoin(
                turns, (turns.c.session_id == _items.c.session_id) & (turns.c.turn == _items.c.turn)
            )
        )
        .where(in_session)
        .limit(limit + 1)
    )
    if before is not None:
        statement = statement.where(_items.c.seq < before).order_by(_items.c.seq.desc())
    else:
        if after is not None:
            statement = statement.where(_items.c.seq > after)
        statement = statement.order_by(_items.c.seq)
    rows = list((await connection.execute(statement)).all())
    more = len(rows) > limit
    del rows[limit:]
    if before is not None:
        rows.reverse()
    if not rows:
        return [], None, None
    first, last = rows[0].seq, rows[-1].seq
    if before is not None:
        has_previous = more
        has_next = await _any_item(connection, in_session & (_items.c.seq > last))
    else:
        has_next = more
        has_previous = after is not None and await _any_item(
            connection, in_session & (_items.c.seq < first)
        )
    return (
        item_rows(rows),
        first if has_previous else None,
        last if has_next else None,
    )


async def session_view(
    reader: Reader,
    session_id: str,
    *,
    after: int | None = None,
    before: int | None = None,
    turn: int | None = None,
    limit: int = 200,
) -> SessionView:
    """One page of ``session_id`` (see :class:`SessionView`): the ``limit`` items after seq
    ``after``, or before seq ``before``, or from the first item of turn ``turn`` on (the
    last page when the session has no such turn).

    Raises :class:`~history_store.SessionNotFoundError` for an unknown session.
    """
    limit = max(1, min(limit, MAX_PAGE_ITEMS))
    async with reader.connect() as connection:
        session = await require_session(connection, session_id)
        if turn is not None:
            first = await _first_seq_of_turn(connection, session_id, turn)
            after, before = (first - 1, None) if first is not None else (None, session.last_seq + 1)
        items, previous_before, next_after = await _page_rows(
            connection, session_id, after=after, before=before, limit=limit
        )
        extras = reader.extras
        turns: dict[int, TurnInfo] = {}
        found: list[Summary] = []
        if items and extras.turns:
            turns = await turn_data.turn_infos(
                connection, session_id, items[0].turn, items[-1].turn
            )
        if items and extras.summaries:
            # A summary belongs to the page its range ends on: from the previous page's
            # cursor (or the session's start) to this page's last item (or the end).
            lower = 0
            if previous_before is not None:
                lower = after if after is not None else items[0].seq - 1
            upper = items[-1].seq if next_after is not None else None
            found = await turn_data.summaries(connection, session_id, lower, upper)
    return SessionView(
        session=session_info(session),
        items=items,
        turns=turns,
        summaries=found,
        extras=extras,
        previous_before=previous_before,
        next_after=next_after,
        last_seq=int(session.last_seq),
    )
