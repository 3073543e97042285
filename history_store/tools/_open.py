"""The one way a tool opens a database.

Every tool function takes ``database: HistoryStore | str | URL | None``: an open store, a URL,
or ``None`` for the default (``$HISTORY_STORE_URL``, else ``./history.db``). Then:

* :func:`reading` gives a read-only engine that never creates or changes a file (SQLite
  ``mode=ro`` plus ``PRAGMA query_only``; PostgreSQL ``default_transaction_read_only``), on a
  database whose schema is at head. A missing SQLite file is :class:`DatabaseNotFoundError`;
  an old or empty schema :class:`SchemaOutOfDateError` naming the upgrade command.
* :func:`writing` gives a :class:`HistoryStore`, so the schema is migrated or checked exactly
  as for sessions: the caller's own store (left open), or one opened for the call.
* :func:`foreign` gives a writable engine on a database that is not history_store's (the
  Agents SDK's session tables that ``export_to_sdk`` writes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .._engine import (
    is_sqlite,
    make_engine,
    redact,
    resolve_url,
    sqlite_file_error,
    sqlite_path,
    unavailable,
    write_transaction,
)
from .._sqlite_files import sqlite_file_signature
from ..errors import DatabaseBusyError, DatabaseNotFoundError, DatabaseUnavailableError
from ..schema import current_revision_sync, head_revision, out_of_date
from ..store import HistoryStore

_T = TypeVar("_T")

Database = HistoryStore | str | URL | None
"""What every tool function accepts as its database (see the module docstring)."""


def database_url(database: Database) -> URL:
    """The URL of ``database``, with the defaults applied."""
    if isinstance(database, HistoryStore):
        return database.sqlalchemy_url
    return resolve_url(database)


@asynccontextmanager
async def reading(database: Database, *, schema: bool = True) -> AsyncIterator[AsyncEngine]:
    """A read-only engine on ``database``, disposed on exit.

    With ``schema`` (the default) the database must be at the head revision; ``schema=False``
    is for tables that are not history_store's. An open store is first brought to its schema
    the way its sessions would (creating an SQLite file for ``migrate="auto"``); an in-memory
    store has no file to open a second time, so its own engine is used.
    """
    if isinstance(database, HistoryStore):
        own_engine = await database.engine()
        if _in_memory(database.sqlalchemy_url):
            yield own_engine
            return
    url = database_url(database)
    engine = make_engine(url, read_only=True)
    immutable = engine.url.query.get("immutable") == "1"
    path = sqlite_path(url) if immutable else None
    before = sqlite_file_signature(path) if path is not None else None
    try:
        if schema:
            await _require_head(engine, url)
        yield engine
    finally:
        await engine.dispose()
    if path is not None and sqlite_file_signature(path) != before:
        raise DatabaseBusyError(
            f"{redact(url)} was written while this command read it without taking locks "
            "(it is another user's file, and taking them would have left files its owner "
            "cannot use), so what was read may be inconsistent. Run the command again."
        )


def _in_memory(url: URL) -> bool:
    return is_sqlite(url) and sqlite_path(url) is None


async def _require_head(engine: AsyncEngine, url: URL) -> None:
    try:
        async with engine.connect() as connection:
            found = await connection.run_sync(current_revision_sync)
    except DatabaseUnavailableError:
        raise  # already named (a ConnectionError, so an OSError too)
    except (OSError, DBAPIError) as exc:
        raise unavailable(url, exc) from exc
    if found != head_revision():
        raise out_of_date(url, found)


@asynccontextmanager
async def writing(
    database: Database, *, create: bool = True, migrate: Any = None
) -> AsyncIterator[HistoryStore]:
    """A store on ``database``: the caller's own (left open) or a new one, closed on exit.

    With ``create=False`` a missing SQLite file is an error (deleting from a database that is
    not there is a typo, not a request to create one). ``migrate`` is the new store's
    ``migrate`` mode (``None``: the store's default).
    """
    if isinstance(database, HistoryStore):
        yield database
        return
    url = resolve_url(database)
    path = sqlite_path(url) if is_sqlite(url) else None
    if not create and path is not None and not path.exists():
        raise DatabaseNotFoundError(f"no database at {redact(url)}; check the path or --url")
    async with HistoryStore(url, migrate=migrate) as store:
        yield store


@asynccontextmanager
async def foreign(url: URL) -> AsyncIterator[AsyncEngine]:
    """A writable engine on a database that is not history_store's, disposed on exit."""
    engine = make_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def in_transaction(
    store: HistoryStore,
    what: str,
    operation: Callable[[AsyncConnection], Awaitable[_T]],
) -> _T:
    """Run ``operation`` in one write transaction of ``store``, retried on lock errors; a full
    disk or an unwritable SQLite file raises the precise error naming it."""
    try:
        return await write_transaction(await store.engine(), what, operation)
    except (OSError, DBAPIError) as exc:
        precise = sqlite_file_error(store.sqlalchemy_url, exc)
        if precise is None:
            raise
        raise precise from exc


def chunks(values: list[Any], size: int) -> list[list[Any]]:
    return [values[start : start + size] for start in range(0, len(values), size)]


async def keyset_pages(
    connection: AsyncConnection, column: Any, page_size: int = 500
) -> AsyncIterator[str]:
    """Every distinct value of ``column`` in order, read ``page_size`` at a time (keyset
    pagination), so memory stays flat however many sessions there are."""
    last: str | None = None
    while True:
        statement = select(column).order_by(column).limit(page_size)
        if last is not None:
            statement = statement.where(column > last)
        page = (await connection.execute(statement)).scalars().all()
        for value in page:
            yield value
        if len(page) < page_size:
            return
        last = page[-1]
