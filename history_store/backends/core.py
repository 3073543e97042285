"""The session operations through SQLAlchemy Core: for in-memory SQLite.

An SQLite file takes ``backends.sqlite`` and PostgreSQL ``backends.postgres``, the faster paths for
the same operations with the same values written; an in-memory database lives inside one
SQLAlchemy connection, so only this path can reach it. Each write is one transaction
(``BEGIN IMMEDIATE``), retried on lock errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .. import tables
from .._engine import BEGIN_OPTION, in_write_transaction, retried_write
from .._items import Decode, EncodedItem, Rows, numbered
from .base import pop_latest_readable

_T = TypeVar("_T")
_items = tables.items
_sessions = tables.sessions


# Reads run without BEGIN (each SELECT is its own snapshot). This is history_store's own
# option: SQLAlchemy's AUTOCOMMIT level would turn pysqlite's implicit BEGIN back on when the
# level is reset.
_READ_OPTIONS = {BEGIN_OPTION: "AUTOCOMMIT"}

# INSERT a session row, or bump its counters; RETURNING the new counters. The write lock
# (BEGIN IMMEDIATE) serializes writers, so seq ranges never overlap.
_upsert = sqlite.insert(_sessions)
_UPSERT = _upsert.on_conflict_do_update(
    index_elements=[_sessions.c.session_id],
    set_={
        "last_seq": _sessions.c.last_seq + _upsert.excluded.last_seq,
        "item_count": _sessions.c.item_count + _upsert.excluded.item_count,
        "turn_count": _sessions.c.turn_count + _upsert.excluded.turn_count,
        "updated_at": _upsert.excluded.updated_at,
    },
).returning(_sessions.c.last_seq, _sessions.c.turn_count)


class CoreHistory:
    """The session operations on one async engine (see the module docstring)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _read(self, statement: Any) -> Rows:
        async with self._engine.connect() as connection:
            await connection.execution_options(**_READ_OPTIONS)
            result = await connection.execute(statement)
            return [(seq, item_json) for seq, item_json in result.all()]

    async def read_all(self, session_id: str) -> Rows:
        statement = (
            select(_items.c.seq, _items.c.item)
            .where(_items.c.session_id == session_id)
            .order_by(_items.c.seq)
        )
        return await self._read(statement)

    async def read_tail(self, session_id: str, count: int) -> Rows:
        statement = (
            select(_items.c.seq, _items.c.item)
            .where(_items.c.session_id == session_id)
            .order_by(_items.c.seq.desc())
            .limit(count)
        )
        rows = await self._read(statement)
        rows.reverse()
        return rows

    async def _write(self, what: str, body: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        return await retried_write(
            lambda: in_write_transaction(self._engine, body), what=what, url=self._engine.url
        )

    async def append(self, session_id: str, encoded: Sequence[EncodedItem], now: datetime) -> None:
        count = len(encoded)
        user_inputs = sum(1 for item in encoded if item.starts_turn)

        async def insert(connection: AsyncConnection) -> None:
            counters = await connection.execute(
                _UPSERT,
                {
                    "session_id": session_id,
                    "created_at": now,
                    "updated_at": now,
                    "item_count": count,
                    "turn_count": user_inputs,
                    "last_seq": count,
                },
            )
            last_seq, turn_count = counters.one()
            rows = [
                {
                    "session_id": session_id,
                    "seq": seq,
                    "turn": turn,
                    "role": item.role,
                    "item_type": item.item_type,
                    "text": item.text,
                    "item": item.item_json,
                    "created_at": now,
                }
                for seq, turn, item in numbered(encoded, last_seq=last_seq, turn_count=turn_count)
            ]
            await connection.execute(_items.insert(), rows)

        await self._write("add_items", insert)

    async def pop(
        self,
        session_id: str,
        decode: Decode,
        starts_turn: Callable[[Any], bool],
        window: int,
        now: datetime,
    ) -> Any:
        async def pop(connection: AsyncConnection) -> Any:
            async def fetch_below(below: int) -> Any:
                statement = (
                    select(_items.c.seq, _items.c.item, _items.c.turn)
                    .where(_items.c.session_id == session_id, _items.c.seq < below)
                    .order_by(_items.c.seq.desc())
                    .limit(window)
                )
                return (await connection.execute(statement)).all()

            async def forget(seq: int, started: int | None) -> None:
                await _forget(connection, session_id, seq, started, now)

            return await pop_latest_readable(fetch_below, forget, decode, starts_turn, window)

        return await self._write("pop_item", pop)

    async def clear(self, session_id: str) -> None:
        async def clear(connection: AsyncConnection) -> None:
            await connection.execute(delete(_items).where(_items.c.session_id == session_id))
            await connection.execute(delete(_sessions).where(_sessions.c.session_id == session_id))

        await self._write("clear_session", clear)


async def _forget(
    connection: AsyncConnection, session_id: str, seq: int, turn: int | None, now: datetime
) -> None:
    """Delete one item and count it out; ``turn`` is given when the item started that turn."""
    await connection.execute(
        delete(_items).where(_items.c.session_id == session_id, _items.c.seq == seq)
    )
    values: dict[str, Any] = {"item_count": _sessions.c.item_count - 1, "updated_at": now}
    if turn is not None:
        values["turn_count"] = turn - 1
    await connection.execute(
        update(_sessions).where(_sessions.c.session_id == session_id).values(values)
    )
