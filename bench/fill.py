"""Bulk fills: sessions of up to a million items written straight into each implementation's
tables (one executemany or COPY in one transaction), never through ``add_items``.

Each implementation first creates its own tables by being used once, so the rows land in the
exact schema it reads. history_store's rows carry what ``add_items`` would have written: each
item's token count (``hs_items.tokens``, by the default counter) and the session's running
total through it (``hs_items.cumulative_tokens``, and ``hs_sessions.cumulative_tokens``), which
a token budget's window is found by.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from history_store._items import encode_items

from .impls import OURS, open_pg, open_sqlite
from .items import item_pool

_POOL = item_pool()
_POOL_JSON = [json.dumps(item) for item in _POOL]
_POOL_ENCODED = encode_items(_POOL)


_OURS_COLUMNS = (
    "session_id",
    "seq",
    "turn",
    "role",
    "item_type",
    "text",
    "item",
    "created_at",
    "tokens",
    "cumulative_tokens",
)


def _ours_rows(session_id: str, count: int, now: Any) -> Iterator[tuple[Any, ...]]:
    """Rows in :data:`_OURS_COLUMNS` order."""
    turn, total = 0, 0
    for index in range(count):
        encoded = _POOL_ENCODED[index % len(_POOL_ENCODED)]
        turn += encoded.starts_turn
        total += encoded.tokens
        yield (
            session_id,
            index + 1,
            turn,
            encoded.role,
            encoded.item_type,
            encoded.text,
            encoded.item_json,
            now,
            encoded.tokens,
            total,
        )


def _turns(count: int) -> int:
    return sum(_POOL_ENCODED[i % len(_POOL_ENCODED)].starts_turn for i in range(count))


def _total_tokens(count: int) -> int:
    """``hs_sessions.cumulative_tokens`` of a session of ``count`` pool items."""
    pool = len(_POOL_ENCODED)
    whole, rest = divmod(count, pool)
    per_pool = sum(encoded.tokens for encoded in _POOL_ENCODED)
    return whole * per_pool + sum(encoded.tokens for encoded in _POOL_ENCODED[:rest])


async def create_tables(name: str, path: Path, session_id: str) -> None:
    """Let implementation ``name`` create its schema in ``path`` (and its session row)."""
    backend = open_sqlite(name, path)
    try:
        await backend.session(session_id).get_items(limit=1)
    finally:
        await backend.close()


def _fill_ours(db: sqlite3.Connection, session_id: str, count: int) -> None:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    db.execute(
        "INSERT INTO hs_sessions (session_id, created_at, updated_at, item_count, turn_count, "
        "last_seq, cumulative_tokens) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (session_id, now, now, count, _turns(count), count, _total_tokens(count)),
    )
    db.executemany(
        "INSERT INTO hs_items (session_id, seq, turn, role, item_type, text, item, created_at, "
        "tokens, cumulative_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        _ours_rows(session_id, count, now),
    )


def _fill_advanced(db: sqlite3.Connection, session_id: str, count: int) -> None:
    first = db.execute("SELECT COALESCE(MAX(id), 0) FROM agent_messages").fetchone()[0] + 1
    _fill_sdk(db, session_id, count)
    turn = 0
    rows = []
    for index in range(count):
        item = _POOL[index % len(_POOL)]
        if item.get("role") == "user":
            turn += 1
        kind = str(item.get("role") or item.get("type"))
        name = item.get("name")
        rows.append((session_id, first + index, "main", kind, index + 1, turn, turn, name))
    db.executemany(
        "INSERT INTO message_structure (session_id, message_id, branch_id, message_type, "
        "sequence_number, user_turn_number, branch_turn_number, tool_name) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def _stamps(count: int) -> Iterator[datetime]:
    # One 4-item batch per second, as if written turn by turn: CURRENT_TIMESTAMP has
    # one-second resolution, so a batch shares its stamp. Giving all rows one stamp instead
    # would make SQLAlchemySession (which orders by created_at, then id) sort the whole
    # session on every read, a cost real histories do not have.
    base = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0) - timedelta(
        seconds=count // 4 + 1
    )
    for index in range(count):
        yield base + timedelta(seconds=index // 4)


def _fill_sdk(db: sqlite3.Connection, session_id: str, count: int) -> None:
    db.execute("INSERT OR IGNORE INTO agent_sessions (session_id) VALUES (?)", (session_id,))
    db.executemany(
        "INSERT INTO agent_messages (session_id, message_data, created_at) VALUES (?, ?, ?)",
        (
            (session_id, _POOL_JSON[i % len(_POOL_JSON)], stamp.strftime("%Y-%m-%d %H:%M:%S"))
            for i, stamp in enumerate(_stamps(count))
        ),
    )


def _fill_raw(db: sqlite3.Connection, session_id: str, count: int) -> None:
    db.executemany(
        "INSERT INTO items (session_id, item) VALUES (?, ?)",
        ((session_id, _POOL_JSON[i % len(_POOL_JSON)]) for i in range(count)),
    )


_SQLITE_FILLERS = {
    OURS: _fill_ours,
    "SQLiteSession": _fill_sdk,
    "AsyncSQLiteSession": _fill_sdk,
    "SQLAlchemySession": _fill_sdk,
    "AdvancedSQLiteSession": _fill_advanced,
    "raw_sqlite3": _fill_raw,
}


async def fill_sqlite(name: str, path: Path, session_id: str, count: int) -> None:
    """Create ``path`` with implementation ``name`` and put ``count`` items in ``session_id``."""
    await create_tables(name, path, session_id)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous = OFF")
        db.execute("BEGIN IMMEDIATE")
        _SQLITE_FILLERS[name](db, session_id, count)
        db.execute("COMMIT")
    finally:
        db.close()


async def fill_pg(name: str, url: str, session_id: str, count: int) -> None:
    """Put ``count`` items in ``session_id`` of the PostgreSQL database, with COPY."""
    backend = open_pg(name, url)
    try:
        await backend.session(session_id).get_items(limit=1)
    finally:
        await backend.close()
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        async with connection.transaction():
            if name == OURS:
                now = datetime.now(timezone.utc)
                await connection.execute(
                    "INSERT INTO hs_sessions (session_id, created_at, updated_at, item_count, "
                    "turn_count, last_seq, cumulative_tokens) "
                    "VALUES ($1, $2, $2, $3, $4, $5, $6)",
                    session_id,
                    now,
                    count,
                    _turns(count),
                    count,
                    _total_tokens(count),
                )
                await connection.copy_records_to_table(
                    "hs_items",
                    records=_ours_rows(session_id, count, now),
                    columns=list(_OURS_COLUMNS),
                )
            elif name == "raw_asyncpg":
                await connection.copy_records_to_table(
                    "raw_items",
                    records=((session_id, _POOL_JSON[i % len(_POOL_JSON)]) for i in range(count)),
                    columns=["session_id", "item"],
                )
            else:
                await connection.execute(
                    "INSERT INTO agent_sessions (session_id) VALUES ($1) ON CONFLICT DO NOTHING",
                    session_id,
                )
                await connection.copy_records_to_table(
                    "agent_messages",
                    records=(
                        (session_id, _POOL_JSON[i % len(_POOL_JSON)], stamp)
                        for i, stamp in enumerate(_stamps(count))
                    ),
                    columns=["session_id", "message_data", "created_at"],
                )
    finally:
        await connection.close()
