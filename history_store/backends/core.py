"""The session operations through SQLAlchemy Core: for in-memory SQLite.

An SQLite file takes ``sqlite.py`` and PostgreSQL ``postgres.py``, the faster paths for the
same operations with the same values written; an in-memory database lives inside one
SQLAlchemy connection, so only this backend can reach it. It runs on the store's engine of
the running event loop (the one the schema was created on). Each write is one transaction
(``BEGIN IMMEDIATE``), retried on lock errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import case, delete, exists, func, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .. import tables
from .._engine import BEGIN_OPTION, in_write_transaction, retried_write
from .._time import as_utc
from .base import (
    SUMMARY_FIELDS,
    TURN_FIELDS,
    Appended,
    EncodedItem,
    RecentRows,
    Rows,
    Summary,
    TurnRecord,
    first_of_turn,
    merged_metadata,
    metadata_object,
    numbered,
    recent_rows,
    row_values,
)

_T = TypeVar("_T")
_items = tables.items
_sessions = tables.sessions
_turns = tables.turns
_summaries = tables.summaries


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
        "cumulative_tokens": _sessions.c.cumulative_tokens + _upsert.excluded.cumulative_tokens,
        "updated_at": _upsert.excluded.updated_at,
    },
).returning(_sessions.c.last_seq, _sessions.c.turn_count, _sessions.c.cumulative_tokens)


def _history(session_id: str, *more: Any) -> Any:
    """The session's history rows ``(seq, item, *more)``: not those of failed or blocked
    turns."""
    hidden = select(_turns.c.turn).where(
        _turns.c.session_id == session_id, _turns.c.status.in_(tables.HIDDEN_STATUSES)
    )
    return select(_items.c.seq, _items.c.item, *more).where(
        _items.c.session_id == session_id, _items.c.turn.not_in(hidden)
    )


_record = sqlite.insert(_turns)
_RECORD_TURN = _record.on_conflict_do_update(
    index_elements=[_turns.c.session_id, _turns.c.turn],
    set_={
        "status": _record.excluded.status,
        **{
            name: func.coalesce(_record.excluded[name], _turns.c[name])
            for name in (
                "agent",
                "model",
                "requests",
                "input_tokens",
                "output_tokens",
                "total_tokens",
                "finished_at",
                "estimated_input_tokens",
                "window_first_seq",
            )
        },
        "started_at": func.coalesce(_turns.c.started_at, _record.excluded.started_at),
    },
)
_CREATE_SESSION = sqlite.insert(_sessions).on_conflict_do_nothing(
    index_elements=[_sessions.c.session_id]
)


class CoreBackend:
    """The session operations on the engine ``engine()`` returns for the running loop."""

    def __init__(self, engine: Callable[[], Awaitable[AsyncEngine]]) -> None:
        self._engine = engine

    async def close(self) -> None:
        """Nothing to close: the engines belong to the store, which disposes them."""

    async def _read(self, statement: Any) -> Rows:
        engine = await self._engine()
        async with engine.connect() as connection:
            await connection.execution_options(**_READ_OPTIONS)
            result = await connection.execute(statement)
            return [(seq, item_json) for seq, item_json in result.all()]

    async def read_all(self, session_id: str) -> Rows:
        return await self._read(_history(session_id).order_by(_items.c.seq))

    async def read_tail(self, session_id: str, limit: int, *, before: int | None = None) -> Rows:
        statement = _history(session_id).order_by(_items.c.seq.desc()).limit(limit)
        if before is not None:
            statement = statement.where(_items.c.seq < before)
        rows = await self._read(statement)
        rows.reverse()
        return rows

    async def _write(self, what: str, body: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        engine = await self._engine()
        return await retried_write(
            lambda: in_write_transaction(engine, body), what=what, url=engine.url
        )

    async def append(
        self, session_id: str, items: Sequence[EncodedItem], now: datetime
    ) -> Appended:
        count = len(items)
        user_inputs = sum(1 for item in items if item.starts_turn)

        async def insert(connection: AsyncConnection) -> Appended:
            counters = await connection.execute(
                _UPSERT,
                {
                    "session_id": session_id,
                    "created_at": now,
                    "updated_at": now,
                    "item_count": count,
                    "turn_count": user_inputs,
                    "last_seq": count,
                    "cumulative_tokens": sum(item.tokens for item in items),
                },
            )
            last_seq, turn_count, cumulative = counters.one()
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
                    "tokens": item.tokens,
                    "cumulative_tokens": running,
                }
                for seq, turn, running, item in numbered(
                    items, last_seq=last_seq, turn_count=turn_count, cumulative_tokens=cumulative
                )
            ]
            await connection.execute(_items.insert(), rows)
            return Appended(last_seq=last_seq, turn=turn_count)

        return await self._write("add_items", insert)

    async def read_recent(
        self, session_id: str, tokens: int, *, after: int | None = None
    ) -> RecentRows:
        window_start = (
            select(
                _items.c.seq,
                _items.c.cumulative_tokens,
                _sessions.c.cumulative_tokens,
                _items.c.tokens,
                exists().where(
                    _turns.c.session_id == session_id,
                    _turns.c.turn == _items.c.turn,
                    _turns.c.status.in_(tables.HIDDEN_STATUSES),
                ),
            )
            .select_from(_items.join(_sessions, _sessions.c.session_id == _items.c.session_id))
            .where(
                _items.c.session_id == session_id,
                _sessions.c.cumulative_tokens > tokens,
                _items.c.cumulative_tokens >= _sessions.c.cumulative_tokens - tokens,
            )
            .order_by(_items.c.cumulative_tokens)
            .limit(1)
        )
        engine = await self._engine()
        async with engine.connect() as connection:
            await connection.execution_options(**_READ_OPTIONS)
            start = (await connection.execute(window_start)).first()
            first = max(start[0] if start is not None else 0, after or 0)
            statement = (
                _history(session_id, _items.c.turn, _items.c.tokens)
                .where(_items.c.seq > first)
                .order_by(_items.c.seq)
            )
            rows = (await connection.execute(statement)).all()
            turn_before = None
            if rows:
                turn_before = await connection.scalar(
                    select(_items.c.turn)
                    .where(_items.c.session_id == session_id, _items.c.seq < rows[0][0])
                    .order_by(_items.c.seq.desc())
                    .limit(1)
                )
        return recent_rows(rows, turn_before, start, after)

    async def latest_summary(self, session_id: str) -> Summary | None:
        engine = await self._engine()
        async with engine.connect() as connection:
            await connection.execution_options(**_READ_OPTIONS)
            row = (
                await connection.execute(
                    select(*(_summaries.c[name] for name in SUMMARY_FIELDS))
                    .where(_summaries.c.session_id == session_id)
                    .order_by(_summaries.c.last_seq.desc(), _summaries.c.id.desc())
                    .limit(1)
                )
            ).first()
        if row is None:
            return None
        values = dict(zip(SUMMARY_FIELDS, row, strict=True))
        values["created_at"] = as_utc(values["created_at"])
        return Summary(**values)

    async def add_summary(
        self, session_id: str, summary: Summary, *, previous_last_seq: int
    ) -> bool:
        async def add(connection: AsyncConnection) -> bool:
            newest = await connection.scalar(
                select(func.coalesce(func.max(_summaries.c.last_seq), 0)).where(
                    _summaries.c.session_id == session_id
                )
            )
            if newest != previous_last_seq:
                return False
            values = {name: getattr(summary, name) for name in SUMMARY_FIELDS}
            await connection.execute(_summaries.insert().values(session_id=session_id, **values))
            return True

        return await self._write("add_summary", add)

    async def recent_usage(self, session_id: str, limit: int) -> list[tuple[int, int]]:
        engine = await self._engine()
        async with engine.connect() as connection:
            await connection.execution_options(**_READ_OPTIONS)
            rows = (
                await connection.execute(
                    select(_turns.c.estimated_input_tokens, _turns.c.input_tokens)
                    .where(
                        _turns.c.session_id == session_id,
                        _turns.c.estimated_input_tokens > 0,
                        _turns.c.input_tokens > 0,
                    )
                    .order_by(_turns.c.turn.desc())
                    .limit(limit)
                )
            ).all()
        return [(estimated, reported) for estimated, reported in reversed(rows)]

    async def turn_of(self, session_id: str, seq: int) -> int | None:
        engine = await self._engine()
        async with engine.connect() as connection:
            await connection.execution_options(**_READ_OPTIONS)
            turn: int | None = await connection.scalar(
                select(_items.c.turn).where(_items.c.session_id == session_id, _items.c.seq == seq)
            )
            return turn

    async def record_turns(self, session_id: str, records: Sequence[TurnRecord]) -> None:
        async def record(connection: AsyncConnection) -> None:
            known = await connection.scalar(
                select(_sessions.c.session_id).where(_sessions.c.session_id == session_id)
            )
            if known is None:
                return
            columns = ("session_id", *TURN_FIELDS)
            rows = [dict(zip(columns, row_values(session_id, r), strict=True)) for r in records]
            await connection.execute(_RECORD_TURN, rows)

        if records:
            await self._write("record_turns", record)

    async def remove(self, session_id: str, seq: int, now: datetime) -> bool:
        async def remove(connection: AsyncConnection) -> bool:
            gone = await connection.execute(
                delete(_items)
                .where(_items.c.session_id == session_id, _items.c.seq == seq)
                .returning(_items.c.turn)
            )
            turn = gone.scalar_one_or_none()
            if turn is None:
                return False
            below = await connection.scalar(
                select(_items.c.turn)
                .where(_items.c.session_id == session_id, _items.c.seq < seq)
                .order_by(_items.c.seq.desc())
                .limit(1)
            )
            values: dict[str, Any] = {"item_count": _sessions.c.item_count - 1, "updated_at": now}
            if first_of_turn(turn, below):
                values["turn_count"] = case(
                    (_sessions.c.turn_count == turn, turn - 1), else_=_sessions.c.turn_count
                )
            counted = await connection.execute(
                update(_sessions)
                .where(_sessions.c.session_id == session_id)
                .values(values)
                .returning(_sessions.c.turn_count)
            )
            if counted.scalar_one() == turn - 1:
                await connection.execute(
                    delete(_turns).where(_turns.c.session_id == session_id, _turns.c.turn == turn)
                )
            return True

        return await self._write("pop_item", remove)

    async def clear(self, session_id: str) -> None:
        async def clear(connection: AsyncConnection) -> None:
            await connection.execute(delete(_items).where(_items.c.session_id == session_id))
            await connection.execute(delete(_sessions).where(_sessions.c.session_id == session_id))

        await self._write("clear_session", clear)

    # -- metadata ----------------------------------------------------------------------------

    async def get_metadata(self, session_id: str) -> dict[str, Any] | None:
        statement = select(_sessions.c.metadata).where(_sessions.c.session_id == session_id)
        engine = await self._engine()
        async with engine.connect() as connection:
            await connection.execution_options(**_READ_OPTIONS)
            row = (await connection.execute(statement)).first()
        return None if row is None else metadata_object(session_id, row[0])

    async def update_metadata(
        self, session_id: str, values: Mapping[str, Any], now: datetime
    ) -> dict[str, Any]:
        this_session = _sessions.c.session_id == session_id

        async def merge(connection: AsyncConnection) -> dict[str, Any]:
            await connection.execute(
                _CREATE_SESSION.values(session_id=session_id, created_at=now, updated_at=now)
            )
            stored = await connection.scalar(select(_sessions.c.metadata).where(this_session))
            merged = merged_metadata(session_id, stored, values)
            await connection.execute(
                update(_sessions).where(this_session).values(metadata=merged, updated_at=now)
            )
            return merged

        return await self._write("update_metadata", merge)

    async def create_session(
        self, session_id: str, metadata: Mapping[str, Any], now: datetime
    ) -> None:
        async def create(connection: AsyncConnection) -> None:
            await connection.execute(
                _CREATE_SESSION.values(
                    session_id=session_id, created_at=now, updated_at=now, metadata=dict(metadata)
                )
            )

        await self._write("create_session", create)
