"""The session operations on PostgreSQL through asyncpg directly: one round trip for a write.

Through SQLAlchemy's async layer, each ``add_items`` spent about 300 us of client time around
its one statement (pool checkout and return, the greenlet bridge, compiling the statement,
processing its result), as much again as the server's work. The four session operations
are the hot path of every turn, so on PostgreSQL they run here, on an asyncpg pool per
event loop (``_loop_resources``):

* ``append`` is one statement, the session's counters upsert and every row of the batch
  (``_APPEND``), in autocommit: one round trip, its own transaction, all or nothing. The
  upsert's row lock is held to the statement's end, so writers of one session take turns
  and their seq ranges never overlap.
* reads are one SELECT each, outside any transaction (each sees one snapshot).
* ``remove`` is one statement too: the item deleted, the counters updated (only if the
  delete found the row, so two callers removing one item see one ``True``).
* ``clear`` is a short transaction that locks the session's row first.

Connections are made from the URL and arguments SQLAlchemy's asyncpg dialect would use
(``create_connect_args``), so a URL that works for the engine works here. Nothing here sets
connection state, so a connection goes back to the pool without asyncpg's reset query (one
round trip each time); an open transaction is still rolled back by asyncpg itself.
Everything else (schema, migrations, the tools) uses SQLAlchemy. The statements are the
PostgreSQL form of those in ``core.py``; both write the same values.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import URL

from .._engine import retried_write, unavailable
from .._loop_resources import LoopResources
from .base import (
    Appended,
    EncodedItem,
    RecentRows,
    Rows,
    Summary,
    TurnRecord,
    merged_metadata,
    metadata_json,
    metadata_object,
    numbered,
    recent_rows,
    row_values,
)

_T = TypeVar("_T")
Connection = asyncpg.Connection | PoolConnectionProxy

POOL_SIZE = 10
"""Most connections one event loop's pool opens; idle ones close after five minutes."""

CLOSE_TIMEOUT = 10.0
"""Seconds ``HistoryStore.close`` waits for connections in use before cutting them."""

# Constant statements; the names are those of tables.py. asyncpg prepares each once per
# connection and keeps it (its statement cache), so a call sends only the parameters.
_APPEND = """
WITH counters AS (
    INSERT INTO hs_sessions
        (session_id, created_at, updated_at, item_count, turn_count, last_seq, cumulative_tokens)
    VALUES ($1, $2::timestamptz, $2, $3::bigint, $4::integer, $3, $10::bigint)
    ON CONFLICT (session_id) DO UPDATE SET
        last_seq = hs_sessions.last_seq + excluded.last_seq,
        item_count = hs_sessions.item_count + excluded.item_count,
        turn_count = hs_sessions.turn_count + excluded.turn_count,
        cumulative_tokens = hs_sessions.cumulative_tokens + excluded.cumulative_tokens,
        updated_at = excluded.updated_at
    RETURNING last_seq, turn_count, cumulative_tokens
), inserted AS (
INSERT INTO hs_items (session_id, seq, turn, role, item_type, text, item, created_at, tokens,
                      cumulative_tokens)
SELECT $1, counters.last_seq - $3 + batch.position,
       counters.turn_count - $4 + batch.turn_offset,
       batch.role, batch.item_type, batch.text, batch.item, $2, batch.tokens,
       counters.cumulative_tokens - $10 + batch.running
FROM counters, unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::integer[],
                      $11::integer[], $12::bigint[])
    WITH ORDINALITY AS batch(role, item_type, text, item, turn_offset, tokens, running, position)
)
SELECT last_seq, turn_count FROM counters
"""
# History rows only: those of failed or blocked turns stay stored but are not history.
_HISTORY = (
    "SELECT seq, item FROM hs_items WHERE session_id = $1 AND turn NOT IN "
    "(SELECT turn FROM hs_turns WHERE session_id = $1 AND status IN ('failed', 'blocked')) "
)
_READ_ALL = _HISTORY + "ORDER BY seq"
_READ_TAIL = _HISTORY + "ORDER BY seq DESC LIMIT $2"
_READ_TAIL_BELOW = _HISTORY + "AND seq < $3 ORDER BY seq DESC LIMIT $2"
_TURN_OF = "SELECT turn FROM hs_items WHERE session_id = $1 AND seq = $2"
_TURN_BELOW = (
    "SELECT turn FROM hs_items WHERE session_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT 1"
)
# The newest history rows whose tokens add up to at most $2, after seq $3: those after the
# oldest row p whose running total reaches (total - $2), one index lookup on
# (session_id, cumulative_tokens); all of them when the total is within $2.
# Where the window starts, then the history rows after it: as in sqlite.py. PostgreSQL's
# planner needs the shapes: as a plain join it walks the session's whole cumulative index
# with the bound as a join filter (340 ms at 1M items), as LATERAL it is one index lookup;
# and without the always-true bound on last_seq it takes `seq > $2` for most of the
# session's rows and picks a bitmap scan.
_WINDOW_START = """
SELECT p.seq, p.cumulative_tokens, s.cumulative_tokens, p.tokens, EXISTS (
    SELECT 1 FROM hs_turns t
    WHERE t.session_id = $1 AND t.turn = p.turn AND t.status IN ('failed', 'blocked'))
FROM hs_sessions s, LATERAL (
    SELECT i.seq, i.cumulative_tokens, i.tokens, i.turn FROM hs_items i
    WHERE i.session_id = $1 AND i.cumulative_tokens >= s.cumulative_tokens - $2
    ORDER BY i.cumulative_tokens LIMIT 1) p
WHERE s.session_id = $1 AND s.cumulative_tokens > $2
"""
_RECENT = """
SELECT seq, item, turn, tokens FROM hs_items
WHERE session_id = $1 AND seq > $2
  AND seq <= (SELECT last_seq FROM hs_sessions WHERE session_id = $1)
  AND turn NOT IN (
    SELECT turn FROM hs_turns WHERE session_id = $1 AND status IN ('failed', 'blocked'))
ORDER BY seq
"""
_LATEST_SUMMARY = """
SELECT first_seq, last_seq, text, tokens, model, input_tokens, output_tokens, total_tokens,
       created_at
FROM hs_summaries WHERE session_id = $1 ORDER BY last_seq DESC, id DESC LIMIT 1
"""
# Only while the newest summary still ends at $11; the caller holds the session's row lock,
# so two writers cannot both see the same newest summary.
_ADD_SUMMARY = """
INSERT INTO hs_summaries (session_id, first_seq, last_seq, text, tokens, model, input_tokens,
                          output_tokens, total_tokens, created_at)
SELECT $1::varchar, $2::bigint, $3::bigint, $4::text, $5::integer, $6::text, $7::integer,
       $8::integer, $9::integer, $10::timestamptz
WHERE coalesce((SELECT max(last_seq) FROM hs_summaries WHERE session_id = $1::varchar), 0)
      = $11::bigint
"""
_RECENT_USAGE = """
SELECT estimated_input_tokens, input_tokens FROM hs_turns
WHERE session_id = $1 AND estimated_input_tokens > 0 AND input_tokens > 0
ORDER BY turn DESC LIMIT $2
"""
_LOCK_SESSION = "SELECT 1 FROM hs_sessions WHERE session_id = $1 FOR UPDATE"
# Every part sees the snapshot before the DELETE, so `below` is the row under the removed
# one. The turn count goes back only when the removed row started the latest turn (the rule
# of base.first_of_turn), and that turn's hs_turns row goes with it; the UPDATE runs only if
# the DELETE found the row.
_REMOVE = """
WITH gone AS (DELETE FROM hs_items WHERE session_id = $1 AND seq = $2 RETURNING turn),
below AS (
    SELECT turn FROM hs_items WHERE session_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT 1
),
counted AS (
    UPDATE hs_sessions
    SET item_count = item_count - 1,
        turn_count = CASE
            WHEN gone.turn > 0 AND gone.turn = hs_sessions.turn_count
                 AND gone.turn IS DISTINCT FROM (SELECT turn FROM below)
            THEN gone.turn - 1 ELSE hs_sessions.turn_count END,
        updated_at = $3
    FROM gone
    WHERE hs_sessions.session_id = $1
    RETURNING hs_sessions.turn_count, gone.turn AS removed_turn
),
forgotten AS (
    DELETE FROM hs_turns WHERE session_id = $1
    AND turn IN (SELECT removed_turn FROM counted WHERE turn_count = removed_turn - 1)
)
SELECT count(*) FROM counted
"""
# A turn's row, or its new outcome; NULL keeps what is stored. Only for an existing session.
_RECORD_TURN = """
INSERT INTO hs_turns (session_id, turn, status, agent, model, requests, input_tokens,
                      output_tokens, total_tokens, started_at, finished_at,
                      estimated_input_tokens, window_first_seq)
SELECT $1::varchar, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13
WHERE EXISTS (SELECT 1 FROM hs_sessions WHERE session_id = $1::varchar)
ON CONFLICT (session_id, turn) DO UPDATE SET
    status = excluded.status,
    agent = coalesce(excluded.agent, hs_turns.agent),
    model = coalesce(excluded.model, hs_turns.model),
    requests = coalesce(excluded.requests, hs_turns.requests),
    input_tokens = coalesce(excluded.input_tokens, hs_turns.input_tokens),
    output_tokens = coalesce(excluded.output_tokens, hs_turns.output_tokens),
    total_tokens = coalesce(excluded.total_tokens, hs_turns.total_tokens),
    started_at = coalesce(hs_turns.started_at, excluded.started_at),
    finished_at = coalesce(excluded.finished_at, hs_turns.finished_at),
    estimated_input_tokens = coalesce(excluded.estimated_input_tokens,
                                      hs_turns.estimated_input_tokens),
    window_first_seq = coalesce(excluded.window_first_seq, hs_turns.window_first_seq)
"""
_DELETE_ITEMS = "DELETE FROM hs_items WHERE session_id = $1"
_DELETE_SESSION = "DELETE FROM hs_sessions WHERE session_id = $1"
# metadata is a json column (not jsonb): it keeps the text as written, as SQLite does.
_METADATA = "SELECT metadata::text FROM hs_sessions WHERE session_id = $1"
_METADATA_LOCKED = _METADATA + " FOR UPDATE"
_CREATE_SESSION = (
    "INSERT INTO hs_sessions (session_id, created_at, updated_at, metadata) "
    "VALUES ($1, $2::timestamptz, $2, $3::json) ON CONFLICT (session_id) DO NOTHING"
)
_SET_METADATA = "UPDATE hs_sessions SET metadata = $2::json, updated_at = $3 WHERE session_id = $1"

# What asyncpg raises when it cannot open a connection.
_CONNECT_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

# SQLSTATE class -> the SQLAlchemy error the Core path raises for it (PEP 249's classes).
_ERRORS_BY_SQLSTATE_CLASS: dict[str, type[sa_exc.DBAPIError]] = {
    "0A": sa_exc.NotSupportedError,
    "08": sa_exc.OperationalError,
    "22": sa_exc.DataError,
    "23": sa_exc.IntegrityError,
    "40": sa_exc.OperationalError,
    "42": sa_exc.ProgrammingError,
    "53": sa_exc.OperationalError,
    "57": sa_exc.OperationalError,
    "XX": sa_exc.InternalError,
}


def _as_sqlalchemy_error(
    error: asyncpg.PostgresError | asyncpg.InterfaceError,
) -> sa_exc.DBAPIError:
    """The SQLAlchemy exception the Core path would raise for ``error`` (its ``orig``), so
    callers catch ``IntegrityError`` and friends whichever path ran."""
    if isinstance(error, asyncpg.InterfaceError):
        return sa_exc.InterfaceError(None, None, error)
    sqlstate = getattr(error, "sqlstate", None) or ""
    kind = _ERRORS_BY_SQLSTATE_CLASS.get(sqlstate[:2], sa_exc.DatabaseError)
    return kind(None, None, error)


def asyncpg_connect_arguments(url: URL) -> dict[str, Any]:
    """``asyncpg.connect`` keyword arguments for ``url``, as SQLAlchemy's dialect builds them
    (host, port, user, password, database, multiple hosts, query options)."""
    dialect = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
    _, options = dialect.create_connect_args(url)  # type: ignore[no-untyped-call]
    # Options of SQLAlchemy's adapter rather than of asyncpg: same meaning, asyncpg's name.
    if "prepared_statement_cache_size" in options:
        options["statement_cache_size"] = options.pop("prepared_statement_cache_size")
    options.pop("prepared_statement_name_func", None)
    options.pop("async_fallback", None)
    return dict(options)


async def _keep_state(_connection: Connection) -> None:
    """The pool's reset: nothing (see the module docstring)."""


async def _close(connection: Connection) -> None:
    await connection.close()


class _Connections:
    """The connections of one event loop: a pool, or one connection per use for a loop that
    cannot be relied on to close a pool (``_loop_resources``)."""

    def __init__(self, arguments: dict[str, Any], url: URL, *, pooled: bool) -> None:
        self._arguments = arguments
        self._url = url
        self._pool: asyncpg.Pool | None = None
        self._started: asyncio.Future[None] | None = None
        if pooled:
            self._pool = asyncpg.create_pool(
                min_size=0, max_size=POOL_SIZE, reset=_keep_state, **arguments
            )

    async def _started_pool(self) -> asyncpg.Pool:
        assert self._pool is not None
        if self._started is None:
            # A pool starts once, however many tasks ask for it at the same time.
            self._started = asyncio.ensure_future(self._start(self._pool))
        await asyncio.shield(self._started)
        return self._pool

    @staticmethod
    async def _start(pool: asyncpg.Pool) -> None:
        await pool  # min_size=0: connects nothing yet

    async def _take(self) -> tuple[Connection, Callable[[Connection], Awaitable[None]]]:
        """A connection, and how to give it back."""
        if self._pool is None:
            return await asyncpg.connect(**self._arguments), _close
        pool = await self._started_pool()
        pooled = await pool.acquire()

        async def release(_connection: Connection) -> None:
            await pool.release(pooled)

        return pooled, release

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A connection for one operation. A failure to connect becomes
        :class:`DatabaseUnavailableError` naming the database; the driver's errors become
        SQLAlchemy's (``_as_sqlalchemy_error``)."""
        try:
            connection, give_back = await self._take()
        except _CONNECT_ERRORS as exc:
            raise unavailable(self._url, exc) from exc
        try:
            yield connection
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _as_sqlalchemy_error(exc) from exc
        finally:
            await give_back(connection)

    async def close(self) -> None:
        """Close the pool; connections still in use get :data:`CLOSE_TIMEOUT` seconds to
        come back before they are cut."""
        if self._pool is None or self._started is None:
            return
        await self._started
        try:
            await asyncio.wait_for(self._pool.close(), CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            self._pool.terminate()

    def drop(self) -> None:
        # The loop is closed: nothing can be awaited, and the sockets close as collected.
        self._pool = None


class PostgresBackend:
    """The session operations on one PostgreSQL database (see the module docstring)."""

    def __init__(self, url: URL) -> None:
        self._url = url
        arguments = asyncpg_connect_arguments(url)
        self._connections = LoopResources(
            lambda pooled: _Connections(arguments, url, pooled=pooled),
            close=lambda connections: connections.close(),
            drop=lambda connections: connections.drop(),
        )

    async def close(self) -> None:
        await self._connections.dispose_all()

    async def _fetch(self, statement: str, *arguments: Any) -> Rows:
        connections = await self._connections.get()
        async with connections.connection() as connection:
            rows = await connection.fetch(statement, *arguments)
        # asyncpg's Records index and unpack as the (seq, item) tuples Rows names.
        return cast(Rows, rows)

    async def read_all(self, session_id: str) -> Rows:
        return await self._fetch(_READ_ALL, session_id)

    async def read_tail(self, session_id: str, limit: int, *, before: int | None = None) -> Rows:
        if before is None:
            rows = await self._fetch(_READ_TAIL, session_id, limit)
        else:
            rows = await self._fetch(_READ_TAIL_BELOW, session_id, limit, before)
        rows.reverse()
        return rows

    async def _write(
        self,
        what: str,
        body: Callable[[Connection], Awaitable[_T]],
        *,
        transaction: bool = True,
    ) -> _T:
        """``body`` on one connection (in a transaction unless it is one statement),
        retried as a whole on deadlocks; finished even if the caller is cancelled."""

        async def attempt() -> _T:
            connections = await self._connections.get()
            async with connections.connection() as connection:
                if not transaction:
                    return await body(connection)
                async with connection.transaction():
                    return await body(connection)

        return await retried_write(attempt, what=what, url=self._url)

    async def append(
        self, session_id: str, items: Sequence[EncodedItem], now: datetime
    ) -> Appended:
        user_inputs = sum(1 for item in items if item.starts_turn)
        tokens = sum(item.tokens for item in items)
        within = list(numbered(items, last_seq=0, turn_count=user_inputs, cumulative_tokens=tokens))
        arguments = (
            session_id,
            now,
            len(items),
            user_inputs,
            [item.role for item in items],
            [item.item_type for item in items],
            [item.text for item in items],
            [item.item_json for item in items],
            [turn for _, turn, _, _ in within],
            tokens,
            [item.tokens for item in items],
            [running for _, _, running, _ in within],
        )

        async def insert(connection: Connection) -> Appended:
            counters = await connection.fetchrow(_APPEND, *arguments)
            assert counters is not None  # the upsert returns the session's row
            return Appended(last_seq=counters[0], turn=counters[1])

        return await self._write("add_items", insert, transaction=False)

    async def read_recent(
        self, session_id: str, tokens: int, *, after: int | None = None
    ) -> RecentRows:
        start = await self._fetch(_WINDOW_START, session_id, tokens)
        start_seq = start[0][0] if start else 0
        rows = await self._fetch(_RECENT, session_id, max(start_seq, after or 0))
        turn_before = None
        if rows:
            below = await self._fetch(_TURN_BELOW, session_id, rows[0][0])
            turn_before = below[0][0] if below else None
        return recent_rows(rows, turn_before, start[0] if start else None, after)

    async def latest_summary(self, session_id: str) -> Summary | None:
        rows = await self._fetch(_LATEST_SUMMARY, session_id)
        if not rows:
            return None
        record: Any = rows[0]  # its columns are Summary's fields, in order
        return Summary(*record)

    async def add_summary(
        self, session_id: str, summary: Summary, *, previous_last_seq: int
    ) -> bool:
        assert summary.created_at is not None, "a stored summary has its time"
        values = (*row_values(session_id, summary), previous_last_seq)

        async def add(connection: Connection) -> bool:
            await connection.execute(_LOCK_SESSION, session_id)
            status: str = await connection.execute(_ADD_SUMMARY, *values)
            return status == "INSERT 0 1"

        return await self._write("add_summary", add)

    async def recent_usage(self, session_id: str, limit: int) -> list[tuple[int, int]]:
        rows = await self._fetch(_RECENT_USAGE, session_id, limit)
        return [(int(row[0]), int(row[1])) for row in reversed(rows)]

    async def turn_of(self, session_id: str, seq: int) -> int | None:
        rows = await self._fetch(_TURN_OF, session_id, seq)
        return int(rows[0][0]) if rows else None

    async def record_turns(self, session_id: str, records: Sequence[TurnRecord]) -> None:
        rows = [row_values(session_id, record) for record in records]

        async def record(connection: Connection) -> None:
            await connection.executemany(_RECORD_TURN, rows)

        if rows:
            await self._write("record_turns", record)

    async def remove(self, session_id: str, seq: int, now: datetime) -> bool:
        async def remove(connection: Connection) -> bool:
            return bool(await connection.fetchval(_REMOVE, session_id, seq, now))

        return await self._write("pop_item", remove, transaction=False)

    async def clear(self, session_id: str) -> None:
        async def clear(connection: Connection) -> None:
            await connection.execute(_LOCK_SESSION, session_id)
            await connection.execute(_DELETE_ITEMS, session_id)
            await connection.execute(_DELETE_SESSION, session_id)

        await self._write("clear_session", clear)

    # -- metadata ----------------------------------------------------------------------------

    async def get_metadata(self, session_id: str) -> dict[str, Any] | None:
        rows = await self._fetch(_METADATA, session_id)
        if not rows:
            return None
        stored: Any = rows[0][0]
        return metadata_object(session_id, None if stored is None else json.loads(stored))

    async def update_metadata(
        self, session_id: str, values: Mapping[str, Any], now: datetime
    ) -> dict[str, Any]:
        async def merge(connection: Connection) -> dict[str, Any]:
            await connection.execute(_CREATE_SESSION, session_id, now, None)
            stored = await connection.fetchval(_METADATA_LOCKED, session_id)
            loaded = None if stored is None else json.loads(stored)
            merged = merged_metadata(session_id, loaded, values)
            await connection.execute(_SET_METADATA, session_id, metadata_json(merged), now)
            return merged

        return await self._write("update_metadata", merge)

    async def create_session(
        self, session_id: str, metadata: Mapping[str, Any], now: datetime
    ) -> None:
        async def create(connection: Connection) -> None:
            await connection.execute(_CREATE_SESSION, session_id, now, metadata_json(metadata))

        await self._write("create_session", create, transaction=False)
