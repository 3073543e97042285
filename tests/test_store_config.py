"""HistoryStore set-up: URLs, SQLite PRAGMAs and file mode, engines, closing, query plans."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from history_store import ConfigurationError, HistoryStore, StoreClosedError
from history_store._engine import DEFAULT_URL, URL_ENV_VAR
from history_store.backends.postgres import PostgresBackend
from history_store.backends.sqlite import SQLiteBackend


def test_url_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(URL_ENV_VAR, raising=False)
    assert str(HistoryStore().sqlalchemy_url) == DEFAULT_URL == "sqlite+aiosqlite:///./history.db"
    monkeypatch.setenv(URL_ENV_VAR, f"sqlite:///{tmp_path}/env.db")
    assert str(HistoryStore().sqlalchemy_url) == f"sqlite+aiosqlite:///{tmp_path}/env.db"
    assert str(HistoryStore("sqlite:///x.db").sqlalchemy_url) == "sqlite+aiosqlite:///x.db"
    pg = HistoryStore("postgresql://u:secret@db.example/h")
    assert pg.sqlalchemy_url.drivername == "postgresql+asyncpg"
    assert pg.url == "postgresql+asyncpg://u:***@db.example/h"
    assert pg.dialect == "postgresql"
    with pytest.raises(ConfigurationError, match="unsupported database URL scheme 'mysql'"):
        HistoryStore("mysql://u@h/db")
    with pytest.raises(ConfigurationError, match="migrate must be 'auto' or 'check'"):
        HistoryStore("sqlite:///x.db", migrate="yes")  # type: ignore[arg-type]


async def test_default_url_creates_history_db_in_cwd(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(URL_ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    async with HistoryStore() as store:
        await store.session("default").add_items([{"role": "user", "content": "x"}])
    assert (tmp_path / "history.db").is_file()
    async with HistoryStore(f"sqlite:///{tmp_path / 'history.db'}") as again:
        assert await again.session("default").get_items() == [{"role": "user", "content": "x"}]


async def test_a_session_without_an_id_gets_one_of_its_own(sqlite_url: str) -> None:
    async with HistoryStore(sqlite_url) as store:
        first, second = store.session(), store.session()
        assert first.session_id != second.session_id
        await first.add_items([{"role": "user", "content": "for the first only"}])
        assert await second.get_items() == []
        again = store.session(first.session_id)
        assert await again.get_items() == [{"role": "user", "content": "for the first only"}]
    async with HistoryStore(sqlite_url, default_session_id="shared") as store:
        assert store.session().session_id == store.session().session_id == "shared"


async def test_sqlite_pragmas_on_every_pooled_connection(sqlite_url: str) -> None:
    async with HistoryStore(sqlite_url) as store:
        engine = await store.engine()
        seen: list[tuple[Any, ...]] = []

        async def check(number: int) -> None:
            async with engine.connect() as connection:
                values = []
                for pragma in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous"):
                    values.append(await connection.scalar(text(f"PRAGMA {pragma}")))
                seen.append(tuple(values))
                # Hold the connection so the pool has to hand out distinct ones.
                await asyncio.sleep(0.05)

        await asyncio.gather(*(check(n) for n in range(4)))
        # synchronous=1 is NORMAL.
        assert seen == [("wal", 5000, 1, 1)] * 4
        assert engine.pool.checkedin() >= 4  # type: ignore[attr-defined]


async def test_sqlite_files_are_private(sqlite_url: str, tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        async with HistoryStore(sqlite_url) as store:
            await store.session("p").add_items([{"role": "user", "content": "secret"}])
            modes = {
                path.name: stat.S_IMODE(path.stat().st_mode)
                for path in tmp_path.iterdir()
                if path.name.startswith("history.db")
            }
    finally:
        os.umask(old_umask)
    assert modes["history.db"] == 0o600
    # SQLite gives the -wal and -shm files the main file's mode.
    assert set(modes) >= {"history.db", "history.db-wal", "history.db-shm"}
    assert set(modes.values()) == {0o600}


async def test_one_engine_per_loop_shared_by_sessions(store: HistoryStore) -> None:
    first = await store.engine()
    await store.session("a").add_items([{"role": "user", "content": "a"}])
    await store.session("b").add_items([{"role": "user", "content": "b"}])
    assert await store.engine() is first
    other_loop_engine: list[Any] = []

    def in_thread() -> None:
        async def body() -> None:
            other_loop_engine.append(await store.engine())

        asyncio.run(body())

    await asyncio.to_thread(in_thread)
    assert other_loop_engine[0] is not first


async def test_closed_store_refuses_use(db_url: str) -> None:
    store = HistoryStore(db_url, migrate="auto")
    session = store.session("c")
    await session.add_items([{"role": "user", "content": "x"}])
    await store.close()
    assert store.closed
    with pytest.raises(StoreClosedError, match="is closed; open a new HistoryStore"):
        await session.get_items()
    with pytest.raises(StoreClosedError):
        await session.add_items([{"role": "user", "content": "y"}])
    await store.close()  # closing twice is harmless


async def captured_tail_query(
    store: HistoryStore, session_id: str, limit: int
) -> tuple[str, tuple[Any, ...]]:
    """The SELECT that ``get_items(limit)`` runs through the store's direct path, and its
    parameters."""
    statements: list[tuple[str, tuple[Any, ...]]] = []
    direct = store._backend
    if isinstance(direct, SQLiteBackend):
        read = direct._read

        def capture_sqlite(statement: str, parameters: Any, *, inline: bool) -> Any:
            statements.append((statement, tuple(parameters)))
            return read(statement, parameters, inline=inline)

        direct._read = capture_sqlite  # type: ignore[method-assign]
    else:
        assert isinstance(direct, PostgresBackend)
        fetch = direct._fetch

        async def capture_pg(statement: str, *arguments: Any) -> Any:
            statements.append((statement, arguments))
            return await fetch(statement, *arguments)

        direct._fetch = capture_pg  # type: ignore[method-assign]
    try:
        items = await store.session(session_id).get_items(limit)
    finally:
        # Drop the instance attribute: the class's method shows through again.
        delattr(direct, "_read" if isinstance(direct, SQLiteBackend) else "_fetch")
    assert [item["n"] for item in items] == list(range(20_000 - limit + 1, 20_001))
    (select,) = [s for s in statements if s[0].lstrip().upper().startswith("SELECT")]
    return select


SQLITE_NUMBERS = (
    "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 20000) "
    "SELECT n FROM g"
)
PG_NUMBERS = "SELECT n FROM generate_series(1, 20000) AS n"
BULK_INSERT = (
    "INSERT INTO hs_items (session_id, seq, turn, role, item_type, text, item, created_at) "
    "SELECT 'big', n, n, 'user', 'message', NULL, '{\"n\": ' || n || '}', CURRENT_TIMESTAMP "
    "FROM (NUMBERS) AS numbers"
)


async def test_get_items_with_limit_walks_only_the_tail(store: HistoryStore) -> None:
    """get_items(limit) is O(limit): the plan reads the primary key backwards, no sort."""
    await store.session("big").add_items([{"role": "user", "content": "seed", "n": 0}])
    engine = await store.engine()
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM hs_items"))
        numbers = SQLITE_NUMBERS if store.dialect == "sqlite" else PG_NUMBERS
        await connection.execute(text(BULK_INSERT.replace("NUMBERS", numbers)))
        await connection.execute(text("ANALYZE"))
    statement, parameters = await captured_tail_query(store, "big", 5)
    assert "LIMIT" in statement.upper()
    async with engine.connect() as connection:
        if store.dialect == "sqlite":
            explain = f"EXPLAIN QUERY PLAN {statement}"
            rows = (await connection.exec_driver_sql(explain, parameters)).all()
            plan = " | ".join(str(row[-1]) for row in rows)
            assert "SEARCH hs_items USING" in plan, plan
            assert "TEMP B-TREE" not in plan, plan
        else:
            raw = await connection.get_raw_connection()
            asyncpg_connection = raw.driver_connection
            assert asyncpg_connection is not None
            rows = await asyncpg_connection.fetch(f"EXPLAIN {statement}", *parameters)
            plan = " | ".join(str(row[0]) for row in rows)
            assert "Index Scan Backward using pk_hs_items" in plan, plan
            assert "Sort" not in plan, plan
