"""``history-store sql``: one SQL statement, run so that it cannot change anything.

SQLite: the file is opened ``mode=ro`` with ``PRAGMA query_only``, and an authorizer refuses
``ATTACH`` (which would create a file) and PRAGMAs that set a value. An in-memory store's
database has no file to open read-only, so on its connection the authorizer lets through
only what a query does (read, select, call functions, recurse, read-only PRAGMAs). PostgreSQL: the
connection defaults to read-only transactions, the statement runs in a ``READ ONLY``
transaction, and only query statements are sent at all.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, ResourceClosedError
from sqlalchemy.ext.asyncio import AsyncConnection

from .._engine import redact
from ..errors import InvalidArgumentError, QueryTimeoutError, ReadOnlyQueryError
from ._open import Database, reading
from .roles import refuse_unsafe_role

__all__ = ["DEFAULT_TIMEOUT", "QueryResult", "RowSink", "sql"]


@dataclass(frozen=True)
class QueryResult:
    """The columns and rows a :func:`sql` query returned.

    ``rows`` is empty when the rows went to ``on_rows`` instead; ``row_count`` counts them
    either way. ``truncated``: the query had more than ``max_rows`` rows, and the rest were
    not read.
    """

    columns: list[str]
    rows: list[tuple[Any, ...]]
    row_count: int = 0
    truncated: bool = False


RowSink = Callable[[list[str], Sequence[tuple[Any, ...]]], None]
"""Takes the columns and the next batch of rows, as they are read."""

DEFAULT_TIMEOUT = 30.0
"""Seconds a :func:`sql` query may run before it is cancelled on the database."""

_BATCH = 1000
# The SQLite progress handler runs every this many virtual machine steps (a few µs each).
_PROGRESS_STEPS = 10_000
_PG_QUERY_CANCELED = "57014"


# Authorizer action codes (sqlite3.h): those that attach files or change settings, and those
# a query needs (READ, SELECT, TRANSACTION for the rollback that ends it, FUNCTION, RECURSIVE).
_SQLITE_PRAGMA = 19
_SQLITE_ATTACH = 24
_SQLITE_DETACH = 25
_SQLITE_QUERY_ACTIONS = frozenset({20, 21, 22, 31, 33})

# A READ ONLY transaction does not stop COPY ... TO 'file' / TO PROGRAM or a DO block that
# runs them: they act as the connecting role, a superuser writes server files and runs shell
# commands that way. So on PostgreSQL only query statements are let through (reliability
# issue 7); read-only-ness itself still comes from the transaction.
_PG_QUERY_KEYWORDS = frozenset({"select", "with", "explain", "values", "table", "show"})


def _leading_keyword(query: str) -> str:
    """The first word of ``query``, lower-cased, after whitespace, opening parentheses and
    comments (block comments nest, as PostgreSQL reads them: a naive reader could be fooled
    into seeing SELECT where the server sees COPY)."""
    position, depth = 0, 0
    while position < len(query):
        if query.startswith("/*", position):
            depth, position = depth + 1, position + 2
        elif depth and query.startswith("*/", position):
            depth, position = depth - 1, position + 2
        elif depth:
            position += 1
        elif query.startswith("--", position):
            end = query.find("\n", position)
            position = len(query) if end < 0 else end + 1
        elif query[position].isspace() or query[position] == "(":
            position += 1
        else:
            break
    match = re.match(r"[A-Za-z_]+", query[position:])
    return match.group(0).lower() if match else ""


def _refuse_non_query(query: str) -> None:
    keyword = _leading_keyword(query)
    if keyword not in _PG_QUERY_KEYWORDS:
        raise ReadOnlyQueryError(
            f"refused: `sql` runs read-only queries (SELECT, WITH, EXPLAIN, VALUES, TABLE, "
            f"SHOW), not {keyword.upper() or 'this statement'}. Use psql for anything else."
        )


# PRAGMAs that take an argument yet only read (``PRAGMA table_info(hs_items)``).
_SQLITE_READ_PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "foreign_key_check",
        "integrity_check",
        "quick_check",
    }
)


def _file_authorizer(action: int, arg1: str | None, arg2: str | None, *_: Any) -> int:
    # mode=ro and query_only already stop writes; ATTACH would still create a new file and
    # a PRAGMA with a value could switch query_only off.
    if action in (_SQLITE_ATTACH, _SQLITE_DETACH) or not _pragma_reads(action, arg1, arg2):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _query_authorizer(action: int, arg1: str | None, arg2: str | None, *_: Any) -> int:
    # For a connection that could write (an in-memory store's own): queries only.
    if action in _SQLITE_QUERY_ACTIONS or (
        action == _SQLITE_PRAGMA and _pragma_reads(action, arg1, arg2)
    ):
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _pragma_reads(action: int, name: str | None, argument: str | None) -> bool:
    """False for a PRAGMA that sets a value; True for any other action."""
    return action != _SQLITE_PRAGMA or not argument or (name or "").lower() in _SQLITE_READ_PRAGMAS


def _driver_error(exc: BaseException) -> BaseException:
    """The driver's own exception (SQLAlchemy wraps it; a streamed asyncpg cursor does not)."""
    return exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc


def _is_database_error(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) or getattr(exc, "sqlstate", None) is not None


def _read_only_error(query: str, exc: BaseException) -> ReadOnlyQueryError:
    message = str(_driver_error(exc)).strip().rstrip(".")
    sqlstate = getattr(_driver_error(exc), "sqlstate", None)
    lowered = message.lower()
    if (
        sqlstate == "25006"
        or "readonly" in lowered
        or "read-only" in lowered
        or ("not authorized" in lowered)
    ):
        return ReadOnlyQueryError(
            f"refused: `sql` runs read-only queries (SELECT, WITH, EXPLAIN); {message}. "
            "Use delete/prune/import to change data."
        )
    return ReadOnlyQueryError(f"the query failed: {message}. Check the SQL: {query!r}")


async def sql(
    query: str,
    url: Database = None,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
    max_rows: int | None = None,
    on_rows: RowSink | None = None,
    unsafe_role: bool = False,
) -> QueryResult:
    """Run one read-only SQL statement and return its columns and rows.

    The database connection is read-only and, on PostgreSQL, the statement runs inside a
    ``READ ONLY`` transaction, so any statement that writes fails. A write attempt or invalid
    SQL raises :class:`ReadOnlyQueryError`. Only one statement is accepted.

    Args:
        timeout: seconds the query may run (``None``: no limit). Past it the query is
            cancelled on the database (an SQLite progress handler, PostgreSQL's
            ``statement_timeout``) and :class:`QueryTimeoutError` is raised. A cancelled
            caller (Ctrl-C) cancels the query on the database the same way.
        max_rows: read at most this many rows; ``truncated`` says whether there were more.
        on_rows: called with each batch of rows as it is read, instead of collecting them,
            so memory stays flat however many rows there are.
        unsafe_role: on PostgreSQL, run even as a superuser or a role that can write the
            history tables. Without it such a role raises :class:`UnsafeRoleError` before
            the query runs: a read-only transaction does not stop it (see ``roles``).
    """
    if not query.strip():
        raise ReadOnlyQueryError("the query is empty; give one SELECT statement")
    if timeout is not None and not timeout > 0:
        raise InvalidArgumentError(f"timeout must be > 0 seconds or None, not {timeout}")
    if max_rows is not None and max_rows < 1:
        raise InvalidArgumentError(f"max_rows must be >= 1 or None, not {max_rows}")
    deadline = None if timeout is None else time.monotonic() + timeout
    async with reading(url) as engine, engine.connect() as connection:
        guard: _SQLiteGuard | _PostgresGuard
        if connection.dialect.name == "sqlite":
            guard = _SQLiteGuard(connection, engine, deadline)
        else:
            _refuse_non_query(query)
            if not unsafe_role:
                await refuse_unsafe_role(connection, redact(engine.url))
                await connection.rollback()
            guard = _PostgresGuard(connection, deadline)
        await guard.start()
        # The query runs as a task of its own: a cancelled caller first stops it on the
        # database (guard.cancel), then waits for it to end, so no connection is closed
        # under a query still running.
        reader = asyncio.ensure_future(_read_rows(connection, query, max_rows, on_rows, deadline))
        try:
            return await asyncio.shield(reader)
        except asyncio.CancelledError:
            guard.cancel(reader)
            await asyncio.wait({reader})
            if not reader.cancelled():
                reader.exception()  # retrieved: the caller's cancellation is what counts
            raise
        except Exception as exc:
            if not _is_database_error(exc):
                raise
            raise guard.error(query, exc, timeout) from exc
        finally:
            await guard.finish()


async def _read_rows(
    connection: AsyncConnection,
    query: str,
    max_rows: int | None,
    on_rows: RowSink | None,
    deadline: float | None,
) -> QueryResult:
    # text() would read ":name" in the query as a bind parameter: every colon is escaped.
    result = await connection.stream(text(query.replace(":", "\\:")))
    try:
        columns = list(result.keys())
    except ResourceClosedError:  # a statement that returns no rows (SET, PRAGMA x = y)
        columns = []
    collected: list[tuple[Any, ...]] = []
    count, truncated = 0, False
    if columns:
        async for partition in result.partitions(_BATCH):
            rows = [tuple(row) for row in partition]
            if max_rows is not None and count + len(rows) > max_rows:
                rows, truncated = rows[: max_rows - count], True
            count += len(rows)
            if on_rows is not None:
                on_rows(columns, rows)
            else:
                collected.extend(rows)
            if truncated:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise QueryTimeoutError(_timeout_message(None))
    await result.close()
    return QueryResult(columns=columns, rows=collected, row_count=count, truncated=truncated)


def _timeout_message(timeout: float | None) -> str:
    limit = f" of {timeout:g} s" if timeout is not None else ""
    return (
        f"the query ran past its timeout{limit} and was cancelled on the database. Narrow it "
        "(a WHERE, a LIMIT), or give a longer --timeout (timeout=)."
    )


class _SQLiteGuard:
    """Stops an SQLite query at its deadline or when the caller is cancelled: a progress
    handler, run by SQLite every few thousand steps on the query's own thread, asks it to
    stop. On a file the authorizer refuses ATTACH and PRAGMAs that set a value."""

    def __init__(self, connection: AsyncConnection, engine: Any, deadline: float | None):
        self._connection = connection
        self._engine = engine
        self._deadline = deadline
        self._stop = threading.Event()
        self._raw: Any = None

    def _stopping(self) -> int:
        late = self._deadline is not None and time.monotonic() > self._deadline
        return 1 if late or self._stop.is_set() else 0

    async def start(self) -> None:
        raw = await self._connection.get_raw_connection()
        self._raw = raw.driver_connection
        # A read-only engine's URL says mode=ro; any other is an in-memory store's own.
        read_only_file = self._engine.url.query.get("mode") == "ro"
        authorizer = _file_authorizer if read_only_file else _query_authorizer
        await self._raw.set_authorizer(authorizer)
        await self._raw.set_progress_handler(self._stopping, _PROGRESS_STEPS)

    def cancel(self, reader: asyncio.Future[Any]) -> None:
        self._stop.set()  # the progress handler stops the query at its next call

    def error(self, query: str, exc: BaseException, timeout: float | None) -> ReadOnlyQueryError:
        if "interrupted" in str(_driver_error(exc)).lower():
            if self._stop.is_set():
                return ReadOnlyQueryError("the query was cancelled")
            return QueryTimeoutError(_timeout_message(timeout))
        return _read_only_error(query, exc)

    async def finish(self) -> None:
        self._stop.set()  # a query still stepping (the caller gave up) stops at once
        await self._connection.rollback()
        # The connection may be a store's own (in-memory), going back to its pool.
        await self._raw.set_progress_handler(None, 0)
        await self._raw.set_authorizer(None)


class _PostgresGuard:
    """The query in a READ ONLY transaction with a ``statement_timeout``, so the server
    stops it even if this process dies; a cancelled caller cancels it on the server."""

    def __init__(self, connection: AsyncConnection, deadline: float | None):
        self._connection = connection
        self._deadline = deadline

    async def start(self) -> None:
        await self._connection.execution_options(postgresql_readonly=True)
        if self._deadline is not None:
            milliseconds = max(1, int((self._deadline - time.monotonic()) * 1000))
            await self._connection.execute(
                text("SELECT set_config('statement_timeout', :ms, true)"),
                {"ms": str(milliseconds)},
            )

    def cancel(self, reader: asyncio.Future[Any]) -> None:
        # asyncpg sends the server a cancel request when the task awaiting it is cancelled.
        reader.cancel()

    def error(self, query: str, exc: BaseException, timeout: float | None) -> ReadOnlyQueryError:
        if getattr(_driver_error(exc), "sqlstate", None) == _PG_QUERY_CANCELED:
            return QueryTimeoutError(_timeout_message(timeout))
        return _read_only_error(query, exc)

    async def finish(self) -> None:
        await self._connection.rollback()
