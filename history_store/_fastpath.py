"""SQLite hot paths: fewer round trips to aiosqlite's worker thread.

Through SQLAlchemy's async adaptation every DBAPI call is a round trip between the event loop
and the thread aiosqlite runs the connection on, each costing a thread wake-up (~90 us on the
dev machine): a 4-item ``add_items`` made about twelve, a tail read eight. This module cuts
them while SQLAlchemy keeps beginning, committing and rolling back (so its events, lock-error
handling and pool behave as before):

* :class:`OneTripCursor` / :class:`OneTripConnection`: one trip per statement instead of four,
  none for a commit or rollback with no transaction open;
* :func:`add_rows` / :func:`pop_row`: the statements of a write transaction's body as one
  function run on the driver's thread by :func:`run_on_driver`;
* :func:`write_lock`: in-process SQLite writers queue in Python instead of sleeping in SQLite's
  busy handler.

The SQL is the SQLite form of the Core statements in ``session.py`` and writes the same values;
driver errors come back as SQLAlchemy's ``DBAPIError`` subclasses, so ``retry_on_lock`` and
callers see what they saw before. docs/performance.md has the measurements behind each choice.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import tables
from ._items import EncodedItem

_T = TypeVar("_T")

# The exact text SQLAlchemy's DateTime stores on SQLite, so rows look the same either way.
_DIALECT = sqlite.dialect()
_format_datetime: Callable[[datetime], str] = tables.items.c.created_at.type.dialect_impl(
    _DIALECT
).bind_processor(_DIALECT)  # type: ignore[assignment]

# Constant statements (no SQL is built from values); the names are those of tables.py.
UPSERT_SQL = (
    "INSERT INTO hs_sessions (session_id, created_at, updated_at, item_count, turn_count, "
    "last_seq) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET "
    "last_seq = hs_sessions.last_seq + excluded.last_seq, "
    "item_count = hs_sessions.item_count + excluded.item_count, "
    "turn_count = hs_sessions.turn_count + excluded.turn_count, "
    "updated_at = excluded.updated_at RETURNING last_seq, turn_count"
)
INSERT_SQL = (
    "INSERT INTO hs_items (session_id, seq, turn, role, item_type, text, item, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
POP_WINDOW_SQL = (
    "SELECT seq, item, turn FROM hs_items WHERE session_id = ? AND seq < ? "
    "ORDER BY seq DESC LIMIT ?"
)
DELETE_SQL = "DELETE FROM hs_items WHERE session_id = ? AND seq = ?"
FORGET_SQL = (
    "UPDATE hs_sessions SET item_count = item_count - 1, updated_at = ? WHERE session_id = ?"
)
FORGET_TURN_SQL = (
    "UPDATE hs_sessions SET item_count = item_count - 1, updated_at = ?, turn_count = ? "
    "WHERE session_id = ?"
)
assert tables.items.name == "hs_items" and tables.sessions.name == "hs_sessions"

CORRUPT: Any = object()
"""What a ``decode`` callback returns for a row it could not parse."""

_write_locks: weakref.WeakKeyDictionary[Engine, asyncio.Lock] = weakref.WeakKeyDictionary()


def write_lock(engine: AsyncEngine) -> asyncio.Lock:
    """The lock that lets one writer of this engine at a time ask SQLite for the write lock.

    SQLite has one writer per file; when several connections of one process wait for it,
    each sleeps in SQLite's busy handler (1, 2, 5, 10... ms) instead of being woken, and
    throughput collapses. Queueing in-process writers on an asyncio lock wakes the next one
    the moment the previous commits; other processes still meet ``busy_timeout``. An engine
    belongs to one event loop, so one lock per engine is one per loop.
    """
    key = engine.sync_engine
    lock = _write_locks.get(key)
    if lock is None:
        lock = _write_locks[key] = asyncio.Lock()
    return lock


async def run_on_driver(connection: AsyncConnection, function: Callable[..., _T], *args: Any) -> _T:
    """Run ``function(sqlite3_connection, *args)`` on ``connection``'s driver thread.

    ``connection`` is inside a transaction that SQLAlchemy began (so BEGIN IMMEDIATE, its
    lock errors, the commit and the rollback on failure all go through the engine and its
    events as before); ``function`` runs the statements in between.
    """
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    try:
        return await driver._execute(function, driver._conn, *args)  # type: ignore[no-any-return]
    except sqlite3.Error as exc:
        raise DBAPIError.instance(None, None, exc, sqlite3.Error) from exc


def add_rows(
    db: sqlite3.Connection,
    session_id: str,
    encoded: Sequence[EncodedItem],
    user_inputs: int,
    now: datetime,
) -> None:
    """The body of one ``add_items`` transaction: bump the counters, take the seq range,
    insert every row."""
    count = len(encoded)
    stamp = _format_datetime(now)
    last_seq, turn_count = db.execute(
        UPSERT_SQL, (session_id, stamp, stamp, count, user_inputs, count)
    ).fetchone()
    seq = last_seq - count
    turn = turn_count - user_inputs
    rows = []
    for item in encoded:
        seq += 1
        turn += item.starts_turn
        rows.append(
            (session_id, seq, turn, item.role, item.item_type, item.text, item.item_json, stamp)
        )
    db.executemany(INSERT_SQL, rows)


def pop_row(
    db: sqlite3.Connection,
    session_id: str,
    window: int,
    decode: Callable[[int, str], Any],
    is_turn_start: Callable[[Any], bool],
    now: datetime,
) -> Any:
    """The body of one ``pop_item`` transaction; ``decode`` returns :data:`CORRUPT` for a row
    it cannot parse, which is skipped and kept."""
    below = (1 << 63) - 1
    while True:
        rows = db.execute(POP_WINDOW_SQL, (session_id, below, window)).fetchall()
        for seq, item_json, turn in rows:
            item = decode(seq, item_json)
            if item is CORRUPT:
                continue
            db.execute(DELETE_SQL, (session_id, seq))
            stamp = _format_datetime(now)
            if is_turn_start(item):
                db.execute(FORGET_TURN_SQL, (stamp, turn - 1, session_id))
            else:
                db.execute(FORGET_SQL, (stamp, session_id))
            return item
        if len(rows) < window:
            return None
        below = rows[-1][0]


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """SQLAlchemy's aiosqlite cursor, with one trip to the driver's thread per statement.

    The stock cursor makes four (create the cursor, execute, fetchall, close). Creating and
    closing a sqlite3 cursor touches no database page, so it is done on the calling thread
    (the connection is opened with ``check_same_thread=False``, and SQLite serializes calls
    on one handle); execute and fetchall run together on the driver's thread. Everything
    SQLAlchemy sees (events, errors, description, rowcount) is unchanged.
    """

    __slots__ = ()

    def _make_new_cursor(self, connection: Any) -> Any:
        return aiosqlite.Cursor(connection, connection._conn.cursor())

    def _aenter_cursor(self, cursor: Any) -> Any:
        return cursor

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        cursor = self._cursor._cursor  # type: ignore[attr-defined]

        def execute_and_fetch() -> list[Any] | None:
            cursor.execute(operation, () if parameters is None else parameters)
            return cursor.fetchall() if cursor.description else None

        async with self._adapt_connection._execute_mutex:
            rows = await self._connection._execute(execute_and_fetch)
        if rows is not None:
            self._rows = collections.deque(rows)
        return self._cursor

    async def _async_soft_close(self) -> None:
        self._soft_closed_memoized = self._soft_closed_memoized.union(
            {"description": self._cursor.description}
        )
        self._cursor._cursor.close()  # type: ignore[attr-defined]

    def close(self) -> None:
        self._rows.clear()
        if not self._soft_closed_memoized:
            self._cursor._cursor.close()  # type: ignore[attr-defined]


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's aiosqlite connection using :class:`OneTripCursor`, and skipping the trip
    for a commit or rollback when no transaction is open (sqlite3 would do nothing then)."""

    __slots__ = ()
    _cursor_cls = OneTripCursor

    def rollback(self) -> None:
        if self._in_transaction():
            super().rollback()

    def commit(self) -> None:
        if self._in_transaction():
            super().commit()

    def _in_transaction(self) -> bool:
        try:
            return bool(self._connection.in_transaction)
        except ValueError:  # closed: let the stock method decide what to do
            return True


def use_one_trip_adapter(dbapi_connection: Any) -> None:
    """Switch a freshly opened aiosqlite connection to :class:`OneTripConnection`.

    Only when SQLite is built serialized (``threadsafety == 3``): the cursor then touches the
    handle from the calling thread while the driver's thread may use it.
    """
    if type(dbapi_connection) is AsyncAdapt_aiosqlite_connection and sqlite3.threadsafety == 3:
        dbapi_connection.__class__ = OneTripConnection
