"""Shared fixtures: real SQLite files in temp dirs, the local PostgreSQL, a stub model server.

PostgreSQL tests use ``$HISTORY_STORE_TEST_PG_URL`` (default: the local ``test`` database).
When the server is unreachable they skip, unless that variable is set: then they fail, so CI
can never pass by skipping them. Each test gets an empty ``public`` schema.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import pwd
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from agents import set_tracing_disabled
from openai import AsyncOpenAI
from sqlalchemy.engine import make_url

from history_store import HistoryStore
from history_store.testing import StubModelServer

PG_ENV = "HISTORY_STORE_TEST_PG_URL"
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"

set_tracing_disabled(True)


def pg_test_url() -> str:
    return os.environ.get(PG_ENV) or DEFAULT_PG_URL


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def reset_pg_schema(url: str) -> None:
    """Drop everything in the test database's public schema."""
    connection = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    try:
        await connection.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
    finally:
        await connection.close()


_pg_unreachable: str | None = None
_pg_checked = False


def _require_pg() -> str:
    global _pg_checked, _pg_unreachable
    url = pg_test_url()
    if not _pg_checked:
        _pg_checked = True
        try:
            asyncio.run(reset_pg_schema(url))
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
            _pg_unreachable = f"PostgreSQL at {make_url(url)!r} is unreachable: {exc!r}"
    if _pg_unreachable is not None:
        if os.environ.get(PG_ENV):
            pytest.fail(f"{PG_ENV} is set but {_pg_unreachable}")
        pytest.skip(f"{_pg_unreachable}; set {PG_ENV} to require it")
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = _require_pg()
    asyncio.run(reset_pg_schema(url))
    yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs once on an SQLite file and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    url = _require_pg()
    asyncio.run(reset_pg_schema(url))
    return url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[HistoryStore]:
    async with HistoryStore(db_url, migrate="auto") as opened:
        yield opened


@pytest.fixture(scope="session")
def stub_server() -> Iterator[StubModelServer]:
    with StubModelServer() as server:
        yield server


@pytest.fixture
def stub(stub_server: StubModelServer) -> StubModelServer:
    """The loopback model server, emptied of earlier tests' requests and scripts."""
    stub_server.reset()
    return stub_server


@pytest.fixture
def openai_client(stub: StubModelServer) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=stub.base_url, api_key="stub-key", max_retries=0)


@pytest.fixture(scope="session")
def second_user() -> Iterator[pwd.struct_passwd]:
    """A second, unprivileged uid (created for the test session, removed after)."""
    from helpers import other_user as helper

    user = helper.ensure()
    yield user
    helper.remove()


@pytest.fixture(scope="session")
def third_user() -> Iterator[pwd.struct_passwd]:
    """Another unprivileged uid, for tests that need an owner and a reader, neither root."""
    from helpers import other_user as helper

    name = helper.NAME + "3"
    user = helper.ensure(name)
    yield user
    helper.remove(name)


@pytest.fixture
def as_reader() -> Iterator[Callable[[str], str]]:
    """``as_reader(url)``: for a PostgreSQL URL, the same database as a role made by
    ``history-store db create-reader`` (a name unique to this test, dropped after), as the
    ``sql`` command must connect; an SQLite URL is returned unchanged. Call it once the
    schema is at head: the role is granted the tables that exist then."""
    from history_store.tools.roles import create_reader

    made: list[tuple[str, str]] = []

    def make(url: str) -> str:
        if not url.startswith("postgresql"):
            return url
        role = f"hs15_reader_{os.getpid()}_{len(made)}"
        made.append((url, role))
        # A thread of its own: the caller may be a test whose event loop is running.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, create_reader(role, url)).result()
        return make_url(url).set(username=role).render_as_string(hide_password=False)

    yield make
    for url, role in made:
        asyncio.run(_drop_role(url, role))


async def _drop_role(url: str, role: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    try:
        # The role's grants in this database, then the role (roles are cluster-wide).
        await connection.execute(f'DROP OWNED BY "{role}"')
        await connection.execute(f'DROP ROLE "{role}"')
    finally:
        await connection.close()
