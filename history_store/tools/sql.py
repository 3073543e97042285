"""``history-store sql``: one SQL statement, run so that it cannot change anything.

SQLite: the file is opened ``mode=ro`` with ``PRAGMA query_only``, and an authorizer refuses
``ATTACH`` (which would create a file) and PRAGMAs that set a value. An in-memory store's
database has no file to open read-only, so on its connection the authorizer lets through
only what a query does (read, select, call functions, recurse, read-only PRAGMAs). PostgreSQL: the
connection defaults to read-only transactions, the statement runs in a ``READ ONLY``
transaction, and only query statements are sent at all.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DBAPIError

from ..errors import ReadOnlyQueryError
from ._open import Database, reading

__all__ = ["QueryResult", "sql"]


@dataclass(frozen=True)
class QueryResult:
    """The columns and rows a :func:`sql` query returned."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


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


def _read_only_error(query: str, exc: DBAPIError) -> ReadOnlyQueryError:
    message = str(exc.orig).strip().rstrip(".")
    sqlstate = getattr(exc.orig, "sqlstate", None)
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


async def sql(query: str, url: Database = None) -> QueryResult:
    """Run one read-only SQL statement and return its columns and rows.

    The database connection is read-only and, on PostgreSQL, the statement runs inside a
    ``READ ONLY`` transaction, so any statement that writes fails. A write attempt or invalid
    SQL raises :class:`ReadOnlyQueryError`. Only one statement is accepted.
    """
    if not query.strip():
        raise ReadOnlyQueryError("the query is empty; give one SELECT statement")
    async with reading(url) as engine, engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        raw = await connection.get_raw_connection()
        if sqlite:
            # A read-only engine's URL says mode=ro; any other is an in-memory store's own.
            read_only_file = engine.url.query.get("mode") == "ro"
            authorizer = _file_authorizer if read_only_file else _query_authorizer
            await raw.driver_connection.set_authorizer(authorizer)  # type: ignore[union-attr]
        else:
            _refuse_non_query(query)
            await connection.execution_options(postgresql_readonly=True)
        try:
            result = await connection.exec_driver_sql(query)
            # keys() raises on a statement that returns no rows (SET, PRAGMA x = y).
            columns = list(result.keys()) if result.returns_rows else []
            rows = [tuple(row) for row in result.all()] if result.returns_rows else []
        except DBAPIError as exc:
            raise _read_only_error(query, exc) from exc
        finally:
            await connection.rollback()
            if sqlite:
                # The connection may be a store's own (in-memory), going back to its pool.
                await raw.driver_connection.set_authorizer(None)  # type: ignore[union-attr]
    return QueryResult(columns=columns, rows=rows)
