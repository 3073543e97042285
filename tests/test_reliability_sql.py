"""``sql``: only as a reader role on PostgreSQL, always under a timeout, cancelled on the
server by Ctrl-C, results streamed (issue 15, items 4 and 6)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest
from cli_support import PROGRAM, populate
from conftest import _asyncpg_dsn, _drop_role
from sqlalchemy.engine import make_url

from history_store import QueryTimeoutError, ReadOnlyQueryError, UnsafeRoleError, sql, tables
from history_store.cli import main
from history_store.tools.roles import READABLE

ENDLESS = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"
# 200,000 rows: ~40 MB held as a list before; streamed, the peak stays a few MB.
MANY = (
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 200000) "
    "SELECT x, 'row number ' || x AS label FROM n"
)


async def _server(url: str, query: str, *arguments: object) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    try:
        return await connection.fetch(query, *arguments)
    finally:
        await connection.close()


async def _sleeping_backends(url: str) -> int:
    rows = await _server(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(600)%' "
        "AND pid <> pg_backend_pid()",
    )
    return int(rows[0][0])


async def _wait_for_no_sleepers(url: str, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while (count := await _sleeping_backends(url)) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return count


@pytest.fixture
async def filled_pg(pg_url: str, tmp_path: Path) -> str:
    await populate(pg_url, tmp_path)
    return pg_url


# -- item 4: never as a role that can write ------------------------------------------------------


async def test_sql_refuses_a_superuser_before_running_anything(filled_pg: str) -> None:
    await _server(filled_pg, "CREATE EXTENSION IF NOT EXISTS dblink")
    dsn = _asyncpg_dsn(filled_pg)
    attacks = [
        f"SELECT dblink_exec('{dsn}', 'DELETE FROM hs_items')",  # noqa: S608 (a test's attack)
        f"SELECT dblink_exec('{dsn}', 'CREATE TABLE planted (x int)')",
        "SELECT pg_create_physical_replication_slot('hs15_planted_slot')",
    ]
    for query in attacks:
        with pytest.raises(UnsafeRoleError, match=r"as the role 'postgres', and it is a superuser"):
            await sql(query, filled_pg)
    assert (await _server(filled_pg, "SELECT count(*) FROM hs_items"))[0][0] == 14
    assert (await _server(filled_pg, "SELECT to_regclass('planted')"))[0][0] is None
    slots = await _server(filled_pg, "SELECT slot_name FROM pg_replication_slots")
    assert "hs15_planted_slot" not in [row[0] for row in slots]
    # Asked for explicitly, it runs.
    assert (await sql("SELECT 1", filled_pg, unsafe_role=True)).rows == [(1,)]


@pytest.fixture
async def writer_role(filled_pg: str) -> AsyncIterator[str]:
    role = f"hs15_writer_{os.getpid()}"
    await _server(filled_pg, f'CREATE ROLE "{role}" LOGIN')
    await _server(filled_pg, f'GRANT USAGE ON SCHEMA public TO "{role}"')
    await _server(filled_pg, f'GRANT SELECT ON hs_sessions, hs_items, alembic_version TO "{role}"')
    await _server(filled_pg, f'GRANT INSERT ON hs_items TO "{role}"')
    try:
        yield make_url(filled_pg).set(username=role).render_as_string(hide_password=False)
    finally:
        await _drop_role(filled_pg, role)


async def test_sql_refuses_a_role_that_can_insert(writer_role: str) -> None:
    with pytest.raises(UnsafeRoleError, match=r"and it may change hs_items; a read-only"):
        await sql("SELECT count(*) FROM hs_items", writer_role)
    assert (await sql("SELECT 1", writer_role, unsafe_role=True)).rows == [(1,)]


def test_cli_sql_refuses_the_superuser_unless_unsafe_role(
    filled_pg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--url", filled_pg, "sql", "SELECT 1 AS one"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: refused: `sql` connected to postgresql+asyncpg://postgres@")
    assert "db create-reader ROLE" in err and "--unsafe-role" in err
    assert main(["--url", filled_pg, "sql", "--unsafe-role", "SELECT 1 AS one"]) == 0
    assert capsys.readouterr().out == "one\n1\n(1 row)\n"


def test_db_create_reader_makes_a_role_that_reads_history_only(
    filled_pg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    role = f"hs15_cli_reader_{os.getpid()}"
    asyncio.run(_server(filled_pg, "CREATE TABLE unrelated_secret (x int)"))
    try:
        assert main(["--url", filled_pg, "db", "create-reader", role]) == 0
        assert capsys.readouterr().out == (
            f"created role '{role}': SELECT on {', '.join(READABLE)}; nothing else\n"
        )
        # Every table and view of the schema, and no other.
        assert set(READABLE) == {*tables.metadata.tables, *tables.VIEWS, "alembic_version"}
        reader = make_url(filled_pg).set(username=role).render_as_string(hide_password=False)
        query = "SELECT session_id, items FROM hs_session_summary ORDER BY session_id"
        assert main(["--url", reader, "--json", "sql", query]) == 0
        rows = json.loads(capsys.readouterr().out)["rows"]
        assert rows == [["sales-1", 4], ["support-42", 8], ["support-7", 2]]
        for statement in (
            "SELECT * FROM unrelated_secret",
            "SELECT pg_create_physical_replication_slot('hs15_reader_slot')",
            "WITH gone AS (DELETE FROM hs_items RETURNING 1) SELECT count(*) FROM gone",
        ):
            assert main(["--url", reader, "sql", statement]) == 1
            assert capsys.readouterr().err.startswith("error: ")
        privileges = asyncio.run(
            _server(
                filled_pg,
                "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
                "WHERE grantee = $1 ORDER BY 1, 2",
                role,
            )
        )
        assert {kind for _, kind in privileges} == {"SELECT"}
        assert main(["--url", filled_pg, "db", "create-reader", role]) == 0  # again: updated
        assert capsys.readouterr().out.startswith(f"updated role '{role}'")
    finally:
        asyncio.run(_drop_role(filled_pg, role))
    assert not asyncio.run(_server(filled_pg, "SELECT 1 FROM pg_replication_slots"))


# -- item 6: a timeout on both databases, Ctrl-C cancels on the server -------------------------


async def test_an_endless_query_times_out_on_sqlite(sqlite_url: str, tmp_path: Path) -> None:
    await populate(sqlite_url, tmp_path)
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError, match=r"ran past its timeout of 0\.5 s"):
        await sql(ENDLESS, sqlite_url, timeout=0.5)
    assert time.monotonic() - started < 5


async def test_a_long_query_times_out_on_the_postgresql_server(
    filled_pg: str, as_reader: Callable[[str], str]
) -> None:
    reader = as_reader(filled_pg)
    with pytest.raises(QueryTimeoutError):
        await sql("SELECT pg_sleep(600)", reader, timeout=0.5)
    assert await _wait_for_no_sleepers(filled_pg, 5) == 0


async def test_a_cancelled_caller_cancels_the_query_on_both(
    db_url: str, tmp_path: Path, as_reader: Callable[[str], str]
) -> None:
    await populate(db_url, tmp_path)
    reader = as_reader(db_url)
    query = "SELECT pg_sleep(600)" if db_url.startswith("postgresql") else ENDLESS
    task = asyncio.ensure_future(sql(query, reader, timeout=None))
    await asyncio.sleep(1)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 5
    if db_url.startswith("postgresql"):
        assert await _wait_for_no_sleepers(db_url, 5) == 0


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_ctrl_c_stops_the_cli_query(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, as_reader: Callable[[str], str]
) -> None:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'h.db'}"
        query = ENDLESS
    else:
        url = request.getfixturevalue("pg_url")
        query = "SELECT pg_sleep(600)"
    asyncio.run(populate(url, tmp_path))
    process = subprocess.Popen(
        [PROGRAM, "--url", as_reader(url), "sql", "--timeout", "300", query],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_until_querying(process, url)
    assert process.poll() is None
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=15)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    if kind == "postgresql":
        assert asyncio.run(_wait_for_no_sleepers(url, 5)) == 0


def _wait_until_querying(process: subprocess.Popen[str], url: str) -> None:
    """Until the program has its query running (it starts slowly: it imports the SDK)."""
    deadline = time.monotonic() + 60
    path = make_url(url).database or ""
    while time.monotonic() < deadline and process.poll() is None:
        if url.startswith("postgresql"):
            if asyncio.run(_sleeping_backends(url)):
                break
        elif any(
            os.path.realpath(f"/proc/{process.pid}/fd/{fd}") == path
            for fd in os.listdir(f"/proc/{process.pid}/fd")
        ):
            time.sleep(1)  # opened; give the query a moment to start
            break
        time.sleep(0.2)


def test_a_killed_client_leaves_no_query_running_past_its_timeout(
    filled_pg: str, as_reader: Callable[[str], str]
) -> None:
    process = subprocess.Popen(
        [PROGRAM, "--url", as_reader(filled_pg), "sql", "--timeout", "3", "SELECT pg_sleep(600)"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not asyncio.run(_sleeping_backends(filled_pg)) and time.monotonic() < deadline:
        time.sleep(0.2)
    process.kill()
    process.wait(10)
    # The server stops it at statement_timeout, not after 600 s.
    assert asyncio.run(_wait_for_no_sleepers(filled_pg, 8)) == 0


# -- item 6: streamed results, --max-rows ------------------------------------------------------


class _CountingOutput(io.TextIOBase):
    """stdout that keeps nothing: it counts the lines written."""

    def __init__(self) -> None:
        self.lines = 0

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        return len(text)


def test_many_rows_stream_with_flat_memory(sqlite_url: str, tmp_path: Path) -> None:
    asyncio.run(populate(sqlite_url, tmp_path))
    out = _CountingOutput()
    tracemalloc.start()
    try:
        with contextlib.redirect_stdout(out):  # type: ignore[type-var]
            assert main(["--url", sqlite_url, "sql", "--timeout", "300", MANY]) == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.lines == 200_002  # the header, the rows, the count
    assert peak < 12 * 2**20, f"{peak / 2**20:.1f} MiB"


def test_max_rows_stops_reading(url_with_rows: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", url_with_rows, "sql", "--max-rows", "3", MANY]) == 0
    assert capsys.readouterr().out == (
        "x  label\n1  row number 1\n2  row number 2\n3  row number 3\n"
        "(3 rows, stopped at --max-rows)\n"
    )
    assert main(["--url", url_with_rows, "--json", "sql", "--max-rows", "2", MANY]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "columns": ["x", "label"],
        "rows": [[1, "row number 1"], [2, "row number 2"]],
        "truncated": True,
    }


@pytest.fixture
def url_with_rows(sqlite_url: str, tmp_path: Path) -> str:
    asyncio.run(populate(sqlite_url, tmp_path))
    return sqlite_url


async def test_bad_limits_are_refused(sqlite_url: str) -> None:
    from history_store import InvalidArgumentError

    with pytest.raises(InvalidArgumentError):
        await sql("SELECT 1", sqlite_url, timeout=0)
    with pytest.raises(InvalidArgumentError):
        await sql("SELECT 1", sqlite_url, max_rows=0)
    assert issubclass(QueryTimeoutError, ReadOnlyQueryError)
