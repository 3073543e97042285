"""SQLite hot paths: the body of each write transaction is one call on aiosqlite's thread.

Through SQLAlchemy's async adaptation every DBAPI call is a round trip between the event loop
and the thread aiosqlite runs the connection on (cursor, execute, fetch, close, BEGIN, commit,
and the pool's rollback-on-return): a 4-item ``add_items`` made about twelve of them, each
costing a thread wake-up. Here SQLAlchemy still begins and commits the transaction (its
events, lock-error handling and rollback stay as they were), and the statements in between
(upsert + executemany, or pop's select + delete + update) are one function queued on that
thread: one round trip instead of seven or more. The SQL is the SQLite form of
the Core statements in ``session.py`` and writes the same values; driver errors come back as
SQLAlchemy's ``DBAPIError`` subclasses, so ``retry_on_lock`` and callers see what they saw
before. docs/performance.md has the measurements behind each choice.
"""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.dialects import sqlite
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
