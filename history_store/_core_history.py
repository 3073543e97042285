"""The session operations through SQLAlchemy Core: PostgreSQL (and in-memory SQLite).

The same operations as ``_sqlite_direct.SQLiteHistory``, with the same values written; on a
server database each one is a few round trips in one transaction, retried on deadlocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import tables
from ._engine import BEGIN_OPTION, finish_despite_cancellation, write_transaction
from ._items import CORRUPT, Decode, EncodedItem, Rows, numbered

_T = TypeVar("_T")
_items = tables.items
_sessions = tables.sessions


def _read_options(connection: AsyncConnection) -> dict[str, Any]:
    """Reads run without BEGIN (each SELECT is its own snapshot): two round trips fewer.

    asyncpg takes SQLAlchemy's AUTOCOMMIT isolation level; SQLite takes ours, because
    SQLAlchemy's would turn pysqlite's implicit BEGIN back on when the level is reset.
    """
    if connection.dialect.name == "postgresql":
        return {"isolation_level": "AUTOCOMMIT"}
    return {BEGIN_OPTION: "AUTOCOMMIT"}


def _counters_upsert(dialect: str) -> Any:
    """INSERT a session row, or bump its counters; RETURNING the new counters.

    The row lock this takes serializes writers of one session, so seq ranges never overlap.
    """
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(_sessions)
    return statement.on_conflict_do_update(
        index_elements=[_sessions.c.session_id],
        set_={
            "last_seq": _sessions.c.last_seq + statement.excluded.last_seq,
            "item_count": _sessions.c.item_count + statement.excluded.item_count,
            "turn_count": _sessions.c.turn_count + statement.excluded.turn_count,
            "updated_at": statement.excluded.updated_at,
        },
    ).returning(_sessions.c.last_seq, _sessions.c.turn_count)


_UPSERTS = {dialect: _counters_upsert(dialect) for dialect in ("sqlite", "postgresql")}

# PostgreSQL: the counters upsert and every row of the batch in one statement, so one round
# trip (autocommit: the statement is its own transaction, all or nothing). The upsert's row
# lock is held to the statement's end, so concurrent writers of a session take turns.
_PG_APPEND = text(
    """
    WITH counters AS (
        INSERT INTO hs_sessions
            (session_id, created_at, updated_at, item_count, turn_count, last_seq)
        VALUES (:session_id, :now, :now, CAST(:count AS bigint), CAST(:user_inputs AS integer),
                CAST(:count AS bigint))
        ON CONFLICT (session_id) DO UPDATE SET
            last_seq = hs_sessions.last_seq + excluded.last_seq,
            item_count = hs_sessions.item_count + excluded.item_count,
            turn_count = hs_sessions.turn_count + excluded.turn_count,
            updated_at = excluded.updated_at
        RETURNING last_seq, turn_count
    )
    INSERT INTO hs_items (session_id, seq, turn, role, item_type, text, item, created_at)
    SELECT :session_id, counters.last_seq - CAST(:count AS bigint) + batch.position,
           counters.turn_count - CAST(:user_inputs AS integer) + batch.turn_offset,
           batch.role, batch.item_type, batch.text, batch.item, :now
    FROM counters, unnest(
        CAST(:roles AS text[]), CAST(:item_types AS text[]), CAST(:texts AS text[]),
        CAST(:items AS text[]), CAST(:turn_offsets AS integer[])
    ) WITH ORDINALITY AS batch(role, item_type, text, item, turn_offset, position)
    """
)


class CoreHistory:
    """The session operations on one async engine (see the module docstring)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _read(self, statement: Any) -> Rows:
        async with self._engine.connect() as connection:
            await connection.execution_options(**_read_options(connection))
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

    async def _write(
        self,
        what: str,
        body: Callable[[AsyncConnection], Awaitable[_T]],
        *,
        one_statement: bool = False,
    ) -> _T:
        cancelled = False

        def stop_retrying() -> None:
            nonlocal cancelled
            cancelled = True

        write = asyncio.ensure_future(
            write_transaction(
                self._engine, what, body, one_statement=one_statement, give_up=lambda: cancelled
            )
        )
        return await finish_despite_cancellation(write, stop_retrying)

    async def append(self, session_id: str, encoded: Sequence[EncodedItem], now: datetime) -> None:
        count = len(encoded)
        user_inputs = sum(1 for item in encoded if item.starts_turn)
        if self._engine.dialect.name == "postgresql":
            await self._append_in_one_statement(session_id, encoded, user_inputs, now)
            return

        async def insert(connection: AsyncConnection) -> None:
            upsert = _UPSERTS[connection.dialect.name]
            counters = await connection.execute(
                upsert,
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

    async def _append_in_one_statement(
        self, session_id: str, encoded: Sequence[EncodedItem], user_inputs: int, now: datetime
    ) -> None:
        offsets = [turn for _, turn, _ in numbered(encoded, last_seq=0, turn_count=user_inputs)]
        parameters = {
            "session_id": session_id,
            "now": now,
            "count": len(encoded),
            "user_inputs": user_inputs,
            "roles": [item.role for item in encoded],
            "item_types": [item.item_type for item in encoded],
            "texts": [item.text for item in encoded],
            "items": [item.item_json for item in encoded],
            "turn_offsets": offsets,
        }

        async def insert(connection: AsyncConnection) -> None:
            await connection.execute(_PG_APPEND, parameters)

        await self._write("add_items", insert, one_statement=True)

    async def pop(
        self,
        session_id: str,
        decode: Decode,
        starts_turn: Callable[[Any], bool],
        window: int,
        now: datetime,
    ) -> Any:
        async def pop(connection: AsyncConnection) -> Any:
            below: int | None = None
            while True:
                statement = select(_items.c.seq, _items.c.item, _items.c.turn).where(
                    _items.c.session_id == session_id
                )
                if below is not None:
                    statement = statement.where(_items.c.seq < below)
                statement = statement.order_by(_items.c.seq.desc()).limit(window)
                rows = (await connection.execute(statement)).all()
                for seq, item_json, turn in rows:
                    item = decode(seq, item_json)
                    if item is CORRUPT:
                        continue
                    await _forget(
                        connection, session_id, seq, turn if starts_turn(item) else None, now
                    )
                    return item
                if len(rows) < window:
                    return None
                below = rows[-1][0]

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
