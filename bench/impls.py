"""The implementations compared: how each opens a database and a session in it.

A :class:`Backend` is one database file (or PostgreSQL database) opened the way an application
would: history_store shares one ``HistoryStore``, ``SQLAlchemySession`` one engine, and the
SDK's file-based classes one object per session (that is their design).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import asyncpg
from agents import SQLiteSession
from agents.extensions.memory import (
    AdvancedSQLiteSession,
    AsyncSQLiteSession,
    SQLAlchemySession,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from history_store import HistoryStore

OURS = "history_store"
SQLITE_IMPLS = (
    OURS,
    "SQLiteSession",
    "AsyncSQLiteSession",
    "SQLAlchemySession",
    "AdvancedSQLiteSession",
    "raw_sqlite3",
)
PG_IMPLS = (OURS, "SQLAlchemySession", "raw_asyncpg")


class SessionLike(Protocol):
    async def add_items(self, items: list[Any]) -> None: ...
    async def get_items(self, limit: int | None = None) -> list[Any]: ...
    async def pop_item(self) -> Any: ...


class RawSession:
    """The floor: plain sqlite3 on the event loop thread, WAL, synchronous=NORMAL.

    Same minimal schema as everyone (session id, order key, JSON), one executemany per batch.
    """

    def __init__(self, connection: sqlite3.Connection, session_id: str) -> None:
        self._db = connection
        self._sid = session_id

    async def add_items(self, items: list[Any]) -> None:
        rows = [(self._sid, json.dumps(item)) for item in items]
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany("INSERT INTO items (session_id, item) VALUES (?, ?)", rows)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    async def get_items(self, limit: int | None = None) -> list[Any]:
        if limit is None:
            sql, args = "SELECT item FROM items WHERE session_id = ? ORDER BY seq", (self._sid,)
            return [json.loads(row[0]) for row in self._db.execute(sql, args)]
        sql = "SELECT item FROM items WHERE session_id = ? ORDER BY seq DESC LIMIT ?"
        rows = self._db.execute(sql, (self._sid, limit)).fetchall()
        return [json.loads(row[0]) for row in reversed(rows)]

    async def pop_item(self) -> Any:
        self._db.execute("BEGIN IMMEDIATE")
        row = self._db.execute(
            "DELETE FROM items WHERE seq = (SELECT seq FROM items WHERE session_id = ? "
            "ORDER BY seq DESC LIMIT 1) RETURNING item",
            (self._sid,),
        ).fetchone()
        self._db.execute("COMMIT")
        return None if row is None else json.loads(row[0])


def raw_connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute("PRAGMA busy_timeout = 5000")
    connection.execute(
        "CREATE TABLE IF NOT EXISTS items (seq INTEGER PRIMARY KEY, "
        "session_id TEXT NOT NULL, item TEXT NOT NULL)"
    )
    connection.execute("CREATE INDEX IF NOT EXISTS ix_items ON items (session_id, seq)")
    return connection


RAW_PG_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS raw_items (seq bigserial PRIMARY KEY, "
    "session_id text NOT NULL, item text NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ix_raw_items ON raw_items (session_id, seq)",
)


async def _no_reset(_connection: Any) -> None:
    pass


class RawPgPool:
    """The PostgreSQL floor's connections: a bare asyncpg pool, created on first use."""

    def __init__(self, url: str) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> asyncpg.Pool:
        async with self._lock:
            if self._pool is None:
                pool = await asyncpg.create_pool(
                    self._dsn, min_size=0, max_size=10, reset=_no_reset
                )
                async with pool.acquire() as connection:
                    for statement in RAW_PG_SCHEMA:
                        await connection.execute(statement)
                self._pool = pool
            return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


class RawPgSession:
    """The PostgreSQL floor: bare asyncpg, minimal schema (session id, order key, JSON), one
    INSERT of the whole batch per call in autocommit; no counters, no text, no search."""

    def __init__(self, pool: RawPgPool, session_id: str) -> None:
        self._pool = pool
        self._sid = session_id

    async def add_items(self, items: list[Any]) -> None:
        rows = [json.dumps(item) for item in items]
        async with (await self._pool.get()).acquire() as connection:
            await connection.execute(
                "INSERT INTO raw_items (session_id, item) SELECT $1, unnest($2::text[])",
                self._sid,
                rows,
            )

    async def get_items(self, limit: int | None = None) -> list[Any]:
        async with (await self._pool.get()).acquire() as connection:
            if limit is None:
                rows = await connection.fetch(
                    "SELECT item FROM raw_items WHERE session_id = $1 ORDER BY seq", self._sid
                )
                return [json.loads(row[0]) for row in rows]
            rows = await connection.fetch(
                "SELECT item FROM raw_items WHERE session_id = $1 ORDER BY seq DESC LIMIT $2",
                self._sid,
                limit,
            )
        return [json.loads(row[0]) for row in reversed(rows)]

    async def pop_item(self) -> Any:
        async with (await self._pool.get()).acquire() as connection:
            item = await connection.fetchval(
                "DELETE FROM raw_items WHERE seq = (SELECT seq FROM raw_items "
                "WHERE session_id = $1 ORDER BY seq DESC LIMIT 1) RETURNING item",
                self._sid,
            )
        return None if item is None else json.loads(item)


class Backend:
    """One database opened by one implementation; ``session(sid)`` gives a session in it."""

    def __init__(
        self,
        name: str,
        make: Callable[[str], SessionLike],
        close: Callable[[list[SessionLike]], Awaitable[None]],
    ) -> None:
        self.name = name
        self._make = make
        self._close = close
        self._sessions: dict[str, SessionLike] = {}

    def session(self, session_id: str) -> SessionLike:
        if session_id not in self._sessions:
            self._sessions[session_id] = self._make(session_id)
        return self._sessions[session_id]

    async def close(self) -> None:
        await self._close(list(self._sessions.values()))
        self._sessions.clear()


async def _close_each(sessions: list[Any]) -> None:
    for session in sessions:
        result = session.close()
        if result is not None:
            await result


def _sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def open_sqlite(name: str, path: Path) -> Backend:
    """Open ``path`` with implementation ``name`` (one of :data:`SQLITE_IMPLS`)."""
    if name == OURS:
        store = HistoryStore(_sqlite_url(path), migrate="auto")
        return Backend(name, store.session, lambda _s: store.close())  # type: ignore[arg-type]
    if name == "SQLiteSession":
        return Backend(name, lambda sid: SQLiteSession(sid, db_path=path), _close_each)
    if name == "AsyncSQLiteSession":
        return Backend(name, lambda sid: AsyncSQLiteSession(sid, db_path=path), _close_each)
    if name == "AdvancedSQLiteSession":
        return Backend(
            name,
            lambda sid: AdvancedSQLiteSession(session_id=sid, db_path=path, create_tables=True),
            _close_each,
        )
    if name == "SQLAlchemySession":
        return _sqlalchemy_backend(create_async_engine(_sqlite_url(path)))
    if name == "raw_sqlite3":
        connection = raw_connect(path)

        async def close_raw(_sessions: list[Any]) -> None:
            connection.close()

        return Backend(name, lambda sid: RawSession(connection, sid), close_raw)
    raise ValueError(f"unknown implementation {name!r}")


def _sqlalchemy_backend(engine: AsyncEngine) -> Backend:
    async def close(_sessions: list[Any]) -> None:
        await engine.dispose()

    return Backend(
        "SQLAlchemySession",
        lambda sid: SQLAlchemySession(sid, engine=engine, create_tables=True),
        close,
    )


def open_pg(name: str, url: str) -> Backend:
    """Open the PostgreSQL database at ``url`` with ``name`` (one of :data:`PG_IMPLS`)."""
    if name == OURS:
        store = HistoryStore(url, migrate="auto")
        return Backend(name, store.session, lambda _s: store.close())  # type: ignore[arg-type]
    if name == "SQLAlchemySession":
        return _sqlalchemy_backend(create_async_engine(url, pool_size=10, max_overflow=20))
    if name == "raw_asyncpg":
        pool = RawPgPool(url)
        return Backend(name, lambda sid: RawPgSession(pool, sid), lambda _s: pool.close())
    raise ValueError(f"unknown PostgreSQL implementation {name!r}")
