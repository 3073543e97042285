"""Security: bound SQL only, a read-only ``sql`` entry point, redacted URLs, private files,
and history encrypted at rest through the SDK's ``EncryptedSession``."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from agents import Agent, OpenAIChatCompletionsModel, Runner
from agents.extensions.memory import EncryptedSession
from cryptography.fernet import Fernet
from helpers.sql_scan import find_sql_built_from_data, scan_files
from openai import AsyncOpenAI
from sqlalchemy import update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from history_store import (
    DatabaseUnavailableError,
    HistoryStore,
    HistoryStoreError,
    ReadOnlyQueryError,
    SchemaOutOfDateError,
    tables,
)
from history_store._engine import make_engine, resolve_url
from history_store.testing import StubModelServer
from history_store.tools import inspect
from history_store.tools import sql as sql_tool

ROOT = Path(__file__).resolve().parent.parent
SECRET = "Pa55-w0rd-NEVER-shown"


def _sources() -> Iterator[str]:
    for folder in ("history_store", "migrations"):
        yield from (str(path) for path in sorted((ROOT / folder).rglob("*.py")))


# -- every SQL statement bound ----------------------------------------------------------------

BUILT_FROM_DATA = {
    "f-string into text()": (
        "def f(c, key):\n    c.execute(text(f\"SELECT * FROM t WHERE k = '{key}'\"))\n"
    ),
    "% into exec_driver_sql": (
        "def f(c, name):\n    c.exec_driver_sql(\"DELETE FROM t WHERE a = '%s'\" % name)\n"
    ),
    "+ built first, executed later": (
        "def f(c, n):\n    q = 'SELECT a FROM t WHERE b = ' + n\n    c.execute(q)\n"
    ),
    ".format into sa.text": (
        "import sqlalchemy as sa\ndef f(c, col):\n"
        "    c.execute(sa.text('SELECT {} FROM t'.format(col)))\n"
    ),
    "metadata key in SQL": (
        "def f(c, key):\n    s = f\"SELECT 1 FROM hs_sessions WHERE metadata ->> '{key}'\"\n"
    ),
    "CLI option attribute": "def f(c, args):\n    c.execute(f'PRAGMA {args.pragma}')\n",
    "module name shadowed by a parameter": (
        "LIMIT = 5\ndef f(c, LIMIT):\n    c.execute(f'SELECT a FROM t LIMIT {LIMIT}')\n"
    ),
    "call result": "def f(c):\n    c.execute(f'SELECT a FROM t WHERE b = {input()}')\n",
}

STATIC_SQL = {
    "module constant": (
        "TIMEOUT = 5\ndef f(c):\n    c.execute(f'PRAGMA busy_timeout = {TIMEOUT}')\n"
    ),
    "table name attribute": (
        "from . import tables\nT = tables.items.name\nQ = f'SELECT seq FROM {T} WHERE a = ?'\n"
    ),
    "loop over literals": (
        "def f(op):\n    for t in ('a', 'b'):\n"
        "        op.execute(f'DROP TRIGGER IF EXISTS x_{t}')\n"
    ),
    "message naming a keyword": "def f(x):\n    raise ValueError(f'give one SELECT, not {x}')\n",
    "bound parameter": (
        "def f(c, k):\n    c.execute(text('SELECT a FROM t WHERE k = :k'), {'k': k})\n"
    ),
}


@pytest.mark.parametrize("source", BUILT_FROM_DATA.values(), ids=BUILT_FROM_DATA.keys())
def test_scanner_flags_sql_built_from_data(source: str) -> None:
    assert len(find_sql_built_from_data(source)) >= 1


@pytest.mark.parametrize("source", STATIC_SQL.values(), ids=STATIC_SQL.keys())
def test_scanner_accepts_static_sql(source: str) -> None:
    assert find_sql_built_from_data(source) == []


def test_no_sql_in_the_library_is_built_from_data() -> None:
    sources = list(_sources())
    assert len(sources) > 10
    assert scan_files(iter(sources)) == []


def test_ruff_s608_finds_no_string_built_sql() -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ruff"),
            "check",
            "--select",
            "S608",
            "--no-cache",
            "history_store",
            "migrations",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert (result.returncode, result.stdout) == (0, "All checks passed!\n")


HOSTILE = [
    "x'); DROP TABLE hs_items; --",
    'a"b',
    "$.x",
    "%",
    "k' OR '1'='1",
]


async def test_hostile_metadata_keys_and_prefixes_are_only_data(db_url: str) -> None:
    async with HistoryStore(db_url, migrate="auto") as store:
        for number in range(len(HOSTILE)):
            await store.session(f"s{number}").add_items([{"role": "user", "content": "x"}])
        engine = await store.engine()
        async with engine.begin() as connection:
            for number, key in enumerate(HOSTILE):
                await connection.execute(
                    update(tables.sessions)
                    .where(tables.sessions.c.session_id == f"s{number}")
                    .values(metadata={key: number})
                )
    for number, key in enumerate(HOSTILE):
        page = await inspect.sessions(db_url, metadata_key=key)
        assert [info.session_id for info in page.sessions] == [f"s{number}"]
        assert (await inspect.sessions(db_url, prefix=key)).sessions == []
    assert len((await inspect.sessions(db_url)).sessions) == len(HOSTILE)


# -- the read-only entry points cannot write ----------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
async def quiet_sqlite(tmp_path: Path) -> str:
    """An SQLite file with one session, checkpointed and closed: its bytes must not change."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'ro.db'}"
    async with HistoryStore(url) as store:
        await store.session("s").add_items([{"role": "user", "content": "hi"}])
    connection = sqlite3.connect(tmp_path / "ro.db")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return url


def _leftovers(folder: Path) -> list[str]:
    """Files beside ro.db other than its own (a reader may open the -wal/-shm pair; the
    -wal must stay empty: nothing was written)."""
    wal = folder / "ro.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    return sorted(p.name for p in folder.iterdir() if p.name not in ("ro.db-wal", "ro.db-shm"))


SQLITE_WRITES = [
    "INSERT INTO hs_sessions (session_id, created_at, updated_at) VALUES ('x', 'a', 'b')",
    "UPDATE hs_items SET item = '{}'",
    "DELETE FROM hs_items",
    "DROP TABLE hs_items",
    "CREATE TABLE t (x INTEGER)",
    "CREATE INDEX ix_t ON hs_items (role)",
    "PRAGMA user_version = 7",
]


async def test_read_only_engine_refuses_every_sqlite_write(quiet_sqlite: str) -> None:
    path = Path(make_url(quiet_sqlite).database or "")
    before = _digest(path)
    engine = make_engine(resolve_url(quiet_sqlite), read_only=True)
    try:
        for statement in SQLITE_WRITES:
            async with engine.connect() as connection:
                with pytest.raises(DBAPIError, match=r"readonly|read-only"):
                    await connection.exec_driver_sql(statement)
                    await connection.commit()
    finally:
        await engine.dispose()
    assert _digest(path) == before
    assert _leftovers(path.parent) == ["ro.db"]


async def test_sql_function_refuses_writes_attach_and_pragmas_on_sqlite(
    quiet_sqlite: str, tmp_path: Path
) -> None:
    path = tmp_path / "ro.db"
    before = _digest(path)
    attempts = [
        *SQLITE_WRITES,
        "CREATE TEMP TABLE t (x INTEGER)",
        f"ATTACH '{tmp_path / 'new.db'}' AS other",
        f"VACUUM INTO '{tmp_path / 'copy.db'}'",
        "PRAGMA query_only = 0",
        "PRAGMA journal_mode = DELETE",
        "SELECT 1; DELETE FROM hs_items",
    ]
    for statement in attempts:
        with pytest.raises(ReadOnlyQueryError):
            await sql_tool.sql(statement, quiet_sqlite)
    assert (await sql_tool.sql("SELECT count(*) FROM hs_items", quiet_sqlite)).rows == [(1,)]
    assert _digest(path) == before
    assert _leftovers(tmp_path) == ["ro.db"]


async def test_sql_function_refuses_writes_copy_and_do_on_postgresql(
    pg_url: str, tmp_path: Path, as_reader: Callable[[str], str]
) -> None:
    async with HistoryStore(pg_url, migrate="auto") as store:
        await store.session("s").add_items([{"role": "user", "content": "hi"}])
    pg_url = as_reader(pg_url)
    # The server runs as another OS user: the directory must be writable for COPY to try.
    tmp_path.chmod(0o777)
    attempts = [
        "INSERT INTO hs_sessions (session_id, created_at, updated_at) VALUES ('x', now(), now())",
        "DELETE FROM hs_items",
        "WITH gone AS (DELETE FROM hs_items RETURNING 1) SELECT count(*) FROM gone",
        "DROP TABLE hs_items",
        "CREATE TEMP TABLE t (x int)",
        "SELECT * INTO copy_of_items FROM hs_items",
        "DO $$ BEGIN DELETE FROM hs_items; END $$",
        f"COPY (SELECT 1) TO '{tmp_path / 'copy.txt'}'",
        f"/* /* nested */ SELECT */ COPY (SELECT 1) TO PROGRAM 'touch {tmp_path / 'p.txt'}'",
        "SET default_transaction_read_only = off",
        "SELECT 1; DELETE FROM hs_items",
    ]
    for statement in attempts:
        with pytest.raises(ReadOnlyQueryError):
            await sql_tool.sql(statement, pg_url)
    assert (await sql_tool.sql("SELECT count(*) FROM hs_items", pg_url)).rows == [(1,)]
    assert list(tmp_path.iterdir()) == []


def test_cli_sql_command_cannot_write(
    quiet_sqlite: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from history_store.cli import main

    before = _digest(tmp_path / "ro.db")
    for statement in ("DELETE FROM hs_items", "PRAGMA query_only = 0", "DROP TABLE hs_items"):
        assert main(["--url", quiet_sqlite, "sql", statement]) == 1
        assert "error: refused" in capsys.readouterr().err
    assert main(["--url", quiet_sqlite, "--json", "sql", "SELECT count(*) AS n FROM hs_items"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "columns": ["n"],
        "rows": [[1]],
        "truncated": False,
    }
    assert _digest(tmp_path / "ro.db") == before


# -- passwords never shown -----------------------------------------------------------------------


def _pg_url_with_password(base: str, *, port: int | None = None) -> str:
    url = make_url(base).set(password=SECRET)
    if port is not None:
        url = url.set(port=port)
    return url.render_as_string(hide_password=False)


def _texts_of(exc: BaseException) -> str:
    parts = []
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen), str(getattr(seen, "command", ""))]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in ("sqlalchemy", "sqlalchemy.engine", "sqlalchemy.pool", "asyncpg", "alembic"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    return caplog


async def test_schema_error_and_logs_hide_the_password(
    pg_url: str, all_logs: pytest.LogCaptureFixture
) -> None:
    url = _pg_url_with_password(pg_url)
    store = HistoryStore(url, migrate="check")
    assert SECRET not in repr(store) and SECRET not in store.url
    with pytest.raises(SchemaOutOfDateError) as raised:
        await store.session("s").get_items()
    await store.close()
    assert "***" in str(raised.value) and "***" in raised.value.command
    assert SECRET not in _texts_of(raised.value)
    assert all_logs.records and SECRET not in all_logs.text


@pytest.mark.parametrize(
    "where", ["closed port", "unknown role"], ids=["unreachable", "bad-credentials"]
)
async def test_connection_errors_hide_the_password(
    pg_url: str, where: str, all_logs: pytest.LogCaptureFixture
) -> None:
    if where == "closed port":
        url = _pg_url_with_password(pg_url, port=1)
    else:
        url = make_url(_pg_url_with_password(pg_url)).set(username="no_such_role")
        url = url.render_as_string(hide_password=False)  # type: ignore[assignment]
    with pytest.raises(DatabaseUnavailableError) as raised:
        async with HistoryStore(url) as store:
            await store.session("s").add_items([{"role": "user", "content": "x"}])
    assert isinstance(raised.value, HistoryStoreError)
    assert ":***@" in str(raised.value)
    assert SECRET not in _texts_of(raised.value)
    assert SECRET not in all_logs.text


def test_cli_errors_hide_the_password(pg_url: str) -> None:
    url = _pg_url_with_password(pg_url, port=1)
    result = subprocess.run(
        [sys.executable, "-m", "history_store.cli", "--url", url, "sessions"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode != 0
    assert "error:" in result.stderr and ":***@" in result.stderr
    assert SECRET not in result.stdout + result.stderr


# -- files readable by their owner only ----------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o000])
async def test_new_sqlite_files_are_owner_only(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        path = tmp_path / "sub" / "private.db"
        async with HistoryStore(f"sqlite+aiosqlite:///{path}") as store:
            await store.session("s").add_items([{"role": "user", "content": "secret"}])
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
    finally:
        os.umask(old)
    assert modes == {"private.db": 0o600, "private.db-wal": 0o600, "private.db-shm": 0o600}


# -- encrypted at rest -----------------------------------------------------------------------------


async def test_encrypted_session_over_history_session_keeps_no_plaintext(
    tmp_path: Path, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    path = tmp_path / "enc.db"
    turns = ["my name is Zanzibar", "I live in Quetzaltenango", "what is my name?"]
    key = Fernet.generate_key().decode("ascii")
    agent = Agent(name="a", model=OpenAIChatCompletionsModel("stub-model", openai_client))
    async with HistoryStore(f"sqlite+aiosqlite:///{path}") as store:
        session = EncryptedSession("conv", store.session("conv"), encryption_key=key)
        for text in turns:
            await Runner.run(agent, text, session=session)
        items = await session.get_items()
        # A fresh wrapper with the same key reads the same history back.
        again = await EncryptedSession("conv", store.session("conv"), key).get_items()
        raw = await store.session("conv").get_items()
    assert [item.get("content") for item in items if item.get("role") == "user"] == turns
    assert again == items and len(items) == 6
    # The model saw the whole decrypted history on the last turn.
    assert stub.requests[-1].texts()[::2] == turns
    assert all(set(item) >= {"__enc__", "payload"} for item in raw)
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT role, item_type, text, item FROM hs_items").fetchall()
    dump = repr(rows)
    assert len(rows) == 6
    for secret in ("Zanzibar", "Quetzaltenango", "my name", "reply "):
        assert secret not in dump
    assert {(role, text) for role, _, text, _ in rows} == {(None, None)}
