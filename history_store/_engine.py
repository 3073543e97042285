"""Database URLs and engines: defaults, redaction, SQLite set-up, retries on lock errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool, StaticPool

from ._sqlite_files import create_sqlite_file, reader_would_lock_out_owner
from ._sqlite_files import sqlite_file_error as sqlite_file_error
from ._sqlite_files import sqlite_path as sqlite_path
from .errors import (
    ConfigurationError,
    DatabaseBusyError,
    DatabaseNotFoundError,
    DatabaseUnavailableError,
    HistoryStoreError,
)

DEFAULT_URL = "sqlite+aiosqlite:///./history.db"
URL_ENV_VAR = "HISTORY_STORE_URL"
SQLITE_BUSY_TIMEOUT_MS = 5000
LOCK_RETRY_ATTEMPTS = 8

_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
_SUPPORTED = frozenset(_DRIVERS.values())

_T = TypeVar("_T")

BEGIN_OPTION = "history_store_begin"
"""Execution option naming how an SQLite transaction begins: DEFERRED (default),
IMMEDIATE (writers) or AUTOCOMMIT (no transaction at all)."""
_BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE", "AUTOCOMMIT"})
WRITE_OPTIONS = {BEGIN_OPTION: "IMMEDIATE"}


def resolve_url(url: str | URL | None = None) -> URL:
    """The URL to use: ``url``, else ``$HISTORY_STORE_URL``, else ``./history.db``.

    ``sqlite://`` and ``postgresql://`` URLs get the async drivers (aiosqlite, asyncpg).
    """
    raw = url if url is not None else os.environ.get(URL_ENV_VAR) or DEFAULT_URL
    try:
        parsed = make_url(raw)
    except ArgumentError as exc:
        raise ConfigurationError(
            f"cannot parse database URL {raw!r}: expected for example "
            "'sqlite+aiosqlite:///history.db' or 'postgresql+asyncpg://user@host/db'"
        ) from exc
    name = parsed.drivername
    if name in _DRIVERS:
        parsed = parsed.set(drivername=_DRIVERS[name])
    elif name not in _SUPPORTED:
        raise ConfigurationError(
            f"unsupported database URL scheme {name!r} in {redact(parsed)}: "
            "use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB"
        )
    return parsed


def redact(url: str | URL) -> str:
    """The URL with its password replaced by ``***``, for messages and logs."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        return "<unparseable URL>"
    return parsed.render_as_string(hide_password=True)


def dump_json(value: Any) -> str:
    """JSON as people read it: non-ASCII text is not escaped."""
    return json.dumps(value, ensure_ascii=False)


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


Durability = Literal["normal", "full"]
DURABILITY_OPTION = "synchronous"
"""The URL query key that carries a store's durability (``?synchronous=full``)."""

JOURNAL_SIZE_LIMIT = 16 * 1024 * 1024
"""Bytes a checkpointed WAL file is truncated back to (``PRAGMA journal_size_limit``)."""


def durability_of(url: URL) -> Durability:
    """The durability an SQLite URL asks for (``?synchronous=normal|full``; default normal)."""
    value = str(url.query.get(DURABILITY_OPTION, "normal")).lower()
    if value not in ("normal", "full"):
        raise ConfigurationError(
            f"synchronous must be 'normal' or 'full', not {value!r} (in {redact(url)})"
        )
    return "full" if value == "full" else "normal"


def with_durability(url: URL, durability: str | None) -> URL:
    """An SQLite ``url`` carrying ``durability`` (``None``: as the URL says), checked. A
    server database's commits are as durable as its server is set up to make them, so there
    it changes nothing."""
    if not is_sqlite(url):
        return url
    if durability is not None:
        url = url.update_query_dict({DURABILITY_OPTION: durability})
    durability_of(url)
    return url


def sqlite_pragmas(
    *, read_only: bool = False, durability: Durability = "normal"
) -> tuple[str, ...]:
    """The PRAGMAs every SQLite connection of history_store runs when it opens.

    WAL lets readers work while one writer writes. ``synchronous=NORMAL`` in WAL mode (the
    default durability) makes a commit durable against a crash of the application without
    an fsync per commit; a power loss or an OS crash can lose the last commits (never
    corrupt the file). ``durability="full"`` (``FULL``) fsyncs each commit: nothing
    committed is lost even then, at the cost of a disk flush per write. ``journal_size_limit``
    keeps a checkpointed WAL from staying large. The busy timeout is the driver's
    ``timeout`` argument (:func:`sqlite_busy_timeout`).
    """
    if read_only:
        return ("PRAGMA foreign_keys = ON", "PRAGMA query_only = ON")
    synchronous = (
        "PRAGMA synchronous = FULL" if durability == "full" else "PRAGMA synchronous = NORMAL"
    )
    return (
        "PRAGMA foreign_keys = ON",
        "PRAGMA journal_mode = WAL",
        synchronous,
        f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}",
    )


def configure_sqlite_connection(
    connection: Any, *, read_only: bool = False, durability: Durability = "normal"
) -> None:
    """Run :func:`sqlite_pragmas` on a new DBAPI connection (sqlite3 or SQLAlchemy's adapted
    aiosqlite one).

    Switching a new file to WAL needs a moment alone with it, and SQLite answers "locked"
    at once, without the busy timeout, when another process is opening it at the same time:
    that PRAGMA is retried until the busy timeout has passed.
    """
    cursor = connection.cursor()
    try:
        for pragma in sqlite_pragmas(read_only=read_only, durability=durability):
            deadline = time.monotonic() + sqlite_busy_timeout()
            while True:
                try:
                    cursor.execute(pragma)
                    break
                except Exception as exc:
                    if "locked" not in str(exc).lower() or time.monotonic() > deadline:
                        raise
                    time.sleep(0.005)
    finally:
        cursor.close()


def sqlite_busy_timeout() -> float:
    """Seconds an SQLite connection waits for another's lock (sqlite3's ``timeout``)."""
    return SQLITE_BUSY_TIMEOUT_MS / 1000


def _configure_sqlite(engine: AsyncEngine, *, read_only: bool, durability: Durability) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over BEGIN from pysqlite so writers can ask for BEGIN IMMEDIATE (below).
        dbapi_connection.isolation_level = None
        configure_sqlite_connection(dbapi_connection, read_only=read_only, durability=durability)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A writer takes the write lock up front (IMMEDIATE): a deferred transaction that
        # later tries to write can fail with SQLITE_BUSY at once, without waiting on
        # busy_timeout. AUTOCOMMIT runs statements outside any transaction (PRAGMAs that
        # SQLite ignores inside one).
        mode = connection.get_execution_options().get(BEGIN_OPTION, "DEFERRED")
        if mode not in _BEGIN_MODES:
            raise ConfigurationError(f"unknown SQLite begin mode {mode!r}")
        # Constant statements only: no SQL is built from values (tests/test_security.py).
        if mode == "IMMEDIATE":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif mode == "DEFERRED":
            connection.exec_driver_sql("BEGIN DEFERRED")


def _pool_options(pooled: bool, size: int, overflow: int) -> dict[str, Any]:
    if not pooled:
        return {"poolclass": NullPool}
    return {"pool_size": size, "max_overflow": overflow}


def make_engine(url: URL, *, read_only: bool = False, pooled: bool = True) -> AsyncEngine:
    """A new async engine for ``url``, set up for history_store's access pattern.

    ``pooled=False`` opens a connection per use and keeps none idle, for an event loop that
    cannot be relied on to close a pool before it ends (see ``_loop_resources``).
    """
    if is_sqlite(url):
        durability = durability_of(url)
        # Ours, not the driver's: SQLAlchemy would warn about and drop it.
        url = url.difference_update_query([DURABILITY_OPTION])
        path = sqlite_path(url)
        if read_only:
            if path is None or not path.exists():
                raise DatabaseNotFoundError(
                    f"no database at {redact(url)}; check the path or --url "
                    "(read-only commands never create a database)"
                )
            query = {"mode": "ro", "uri": "true"}
            if reader_would_lock_out_owner(path):
                query["immutable"] = "1"
            url = url.set(database=f"file:{quote(str(path.resolve()))}", query=query)
        elif path is not None:
            create_sqlite_file(path)
        # An in-memory database lives in one connection: every checkout must get that one.
        pool = {"poolclass": StaticPool} if path is None else _pool_options(pooled, 8, 24)
        engine = create_async_engine(
            url,
            json_serializer=dump_json,
            connect_args={"timeout": sqlite_busy_timeout()},
            **pool,
        )
        _configure_sqlite(engine, read_only=read_only, durability=durability)
        return engine
    connect_args: dict[str, Any] = {}
    if read_only:
        connect_args["server_settings"] = {"default_transaction_read_only": "on"}
    engine = create_async_engine(
        url,
        connect_args=connect_args,
        json_serializer=dump_json,
        **_pool_options(pooled, 10, 20),
    )
    _name_the_server_on_connect_errors(engine, url)
    return engine


def _name_the_server_on_connect_errors(engine: AsyncEngine, url: URL) -> None:
    """Make a failure to connect :class:`DatabaseUnavailableError` naming ``url``.

    asyncpg raises a bare ``OSError`` (or its own error class) when the server is down or
    refuses the login, which SQLAlchemy passes on untranslated; every engine meets it on its
    first statement, wherever that is (schema commands, copy, export-to), so it is named
    here, once, where every connection is made.
    """

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as exc:
            raise unavailable(url, exc) from exc


def unavailable(url: URL, exc: BaseException) -> HistoryStoreError:
    """The error for a database that cannot be reached or opened, its password hidden: on
    SQLite the precise one when the file system is the cause (:func:`sqlite_file_error`)."""
    reason = exc.orig if isinstance(exc, DBAPIError) else exc
    if is_sqlite(url):
        precise = sqlite_file_error(url, exc)
        if precise is not None:
            return precise
        return DatabaseUnavailableError(
            f"cannot open the SQLite database at {redact(url)}: {reason}. Check the path, "
            "that the file is an SQLite database, and its permissions."
        )
    return DatabaseUnavailableError(
        f"cannot open the database at {redact(url)}: {reason}. Check that the server is "
        "running and reachable, and the user, password and database name."
    )


def is_lock_error(exc: BaseException) -> bool:
    """True for SQLite's transient 'database is locked/busy' and PostgreSQL's deadlock and
    serialization failures, raised through SQLAlchemy or by asyncpg itself."""
    if isinstance(exc, OperationalError):
        message = str(exc.orig).lower()
        if "locked" in message or "busy" in message:
            return True
    driver_error = exc.orig if isinstance(exc, DBAPIError) else exc
    sqlstate = getattr(driver_error, "sqlstate", None) or getattr(driver_error, "pgcode", None)
    return sqlstate in ("40P01", "40001")


def lock_retry_delays() -> Iterator[float]:
    """Seconds to sleep before each retry of a transaction that met a lock error.

    Jittered exponential backoff, ``LOCK_RETRY_ATTEMPTS - 1`` delays: the caller gives up when
    the iterator is exhausted.
    """
    delay = 0.01
    for _ in range(LOCK_RETRY_ATTEMPTS - 1):
        yield delay * (0.5 + random.random())
        delay = min(delay * 2, 1.0)


def busy_error(what: str, url: URL) -> DatabaseBusyError:
    return DatabaseBusyError(
        f"{what} failed: {redact(url)} stayed locked by other writers after "
        f"{LOCK_RETRY_ATTEMPTS} attempts. Retry later, or move many concurrent "
        "writers to PostgreSQL."
    )


async def retry_on_lock(
    operation: Callable[[], Awaitable[_T]],
    *,
    what: str,
    url: URL,
    give_up: Callable[[], bool] = lambda: False,
) -> _T:
    """Run ``operation`` (one whole transaction), retrying a bounded number of times on lock
    errors. Each attempt is all-or-nothing, so a retry never stores anything twice.

    ``give_up()`` is asked before each retry: a caller that was cancelled stops retrying.
    """
    delays = lock_retry_delays()
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not is_lock_error(exc) or give_up():
                raise
            delay = next(delays, None)
            if delay is None:
                raise busy_error(what, url) from exc
            await asyncio.sleep(delay)


async def finish_despite_cancellation(
    waiter: asyncio.Future[_T], on_cancel: Callable[[], object]
) -> _T:
    """Await ``waiter`` (a write under way); if the caller is cancelled meanwhile, call
    ``on_cancel`` once, still wait for the write to end, then raise ``CancelledError``.

    A write is one transaction: letting it end means a cancelled caller leaves its batch
    whole or absent, never a transaction open on a pooled connection. ``on_cancel`` stops
    what need not happen any more (retries, a write still queued).
    """
    try:
        return await asyncio.shield(waiter)
    except asyncio.CancelledError as exc:
        cancelled = exc
    on_cancel()
    while not waiter.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({waiter})
    if not waiter.cancelled():
        waiter.exception()  # retrieved, so asyncio does not report it as lost
    raise cancelled


async def retried_write(attempt: Callable[[], Awaitable[_T]], *, what: str, url: URL) -> _T:
    """``attempt()`` (one whole transaction) retried on lock errors (:func:`retry_on_lock`)
    and carried to its end even if the caller is cancelled (:func:`finish_despite_cancellation`):
    a cancelled caller stops the retries, and gets ``CancelledError`` once the attempt under
    way has ended."""
    cancelled = False

    def stop_retrying() -> None:
        nonlocal cancelled
        cancelled = True

    write = asyncio.ensure_future(
        retry_on_lock(attempt, what=what, url=url, give_up=lambda: cancelled)
    )
    return await finish_despite_cancellation(write, stop_retrying)


async def in_write_transaction(
    engine: AsyncEngine, body: Callable[[AsyncConnection], Awaitable[_T]]
) -> _T:
    """``body(connection)`` in one write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
    async with engine.connect() as connection:
        await connection.execution_options(**WRITE_OPTIONS)
        async with connection.begin():
            return await body(connection)


async def write_transaction(
    engine: AsyncEngine, what: str, body: Callable[[AsyncConnection], Awaitable[_T]]
) -> _T:
    """``body(connection)`` in one write transaction, retried as a whole on lock errors."""
    return await retry_on_lock(
        lambda: in_write_transaction(engine, body), what=what, url=engine.url
    )
