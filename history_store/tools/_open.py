"""Opening a database for the inspection and maintenance functions.

Readers get a read-only engine that never creates or changes a file, and refuse a database
whose schema is not at head (they cannot migrate it). Writers go through a ``HistoryStore``
so the schema is migrated or checked exactly as for sessions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
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
    unavailable,
    write_transaction,
)
from .._engine import sqlite_path as _sqlite_path
from ..errors import DatabaseNotFoundError
from ..schema import _out_of_date, current_revision_sync, head_revision
from ..store import HistoryStore

_T = TypeVar("_T")


def as_utc(value: datetime) -> datetime:
    """SQLite hands timestamps back naive; they were written in UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


@asynccontextmanager
async def read_engine(url: str | URL | None) -> AsyncIterator[AsyncEngine]:
    """A read-only engine on a database whose schema is at head; disposed on exit.

    Raises :class:`DatabaseNotFoundError` for a missing SQLite file and
    :class:`SchemaOutOfDateError` (naming the upgrade command) for an old or empty schema.
    """
    resolved = resolve_url(url)
    engine = make_engine(resolved, read_only=True)
    try:
        try:
            async with engine.connect() as connection:
                found = await connection.run_sync(current_revision_sync)
        except (OSError, DBAPIError) as exc:
            raise unavailable(resolved, exc) from exc
        if found != head_revision():
            raise _out_of_date(resolved, found)
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def write_store(
    url: str | URL | None, *, create: bool = False
) -> AsyncIterator[HistoryStore]:
    """A store for a write command; with ``create=False`` a missing SQLite file is an error
    (deleting from a database that is not there is a typo, not a request to create one)."""
    resolved = resolve_url(url)
    path = _sqlite_path(resolved) if is_sqlite(resolved) else None
    if not create and path is not None and not path.exists():
        raise DatabaseNotFoundError(f"no database at {redact(resolved)}; check the path or --url")
    async with HistoryStore(resolved) as store:
        yield store


async def store_write(
    store: HistoryStore,
    what: str,
    operation: Callable[[AsyncConnection], Awaitable[_T]],
) -> _T:
    """Run ``operation`` in one write transaction of ``store``, retried on lock errors."""
    return await write_transaction(await store.engine(), what, operation)


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
