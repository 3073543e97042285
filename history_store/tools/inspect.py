"""Read-only inspection of a history database: the functions behind ``history-store``'s
``sessions``, ``show``, ``search``, ``sql`` and ``stats`` commands.

Every function here opens the database read-only (SQLite ``mode=ro`` plus
``PRAGMA query_only``; PostgreSQL ``default_transaction_read_only``), so it never creates or
changes a file, and raises :class:`DatabaseNotFoundError` for a missing SQLite file and
:class:`SchemaOutOfDateError` for a database that is not at the current schema revision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import tables
from .._items import load_item, load_items
from .._time import as_utc
from ..backends import sqlite_fts as search_index
from ..errors import InvalidArgumentError, SessionNotFoundError
from ._open import Database, reading
from .sql import QueryResult, sql

__all__ = [
    "SessionInfo",
    "SessionPage",
    "ItemRow",
    "SearchHit",
    "QueryResult",
    "Stats",
    "sessions",
    "show",
    "search",
    "sql",
    "stats",
]

_items = tables.items
_sessions = tables.sessions


@dataclass(frozen=True)
class SessionInfo:
    """One row of :func:`sessions`: a session and its counters."""

    session_id: str
    items: int
    turns: int
    created_at: datetime
    updated_at: datetime
    metadata: Any


@dataclass(frozen=True)
class SessionPage:
    """A page of sessions ordered by id; pass ``next_after`` as ``after`` for the next page
    (``None`` when this is the last page)."""

    sessions: list[SessionInfo]
    next_after: str | None


@dataclass(frozen=True)
class ItemRow:
    """One stored item with its derived columns; ``item`` is the parsed JSON (``None`` when
    the stored JSON is corrupt)."""

    seq: int
    turn: int
    role: str | None
    item_type: str
    text: str | None
    created_at: datetime
    item: Any


@dataclass(frozen=True)
class SearchHit:
    """One item whose text matched a :func:`search`."""

    session_id: str
    seq: int
    turn: int
    role: str | None
    item_type: str
    text: str


@dataclass(frozen=True)
class Stats:
    """Totals for a whole database; ``database_bytes`` is the size of the SQLite file's pages
    or of the PostgreSQL database."""

    sessions: int
    items: int
    turns: int
    first_activity: datetime | None
    last_activity: datetime | None
    database_bytes: int
    items_by_type: dict[str, int] = field(default_factory=dict)


def _check_limit(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise InvalidArgumentError(f"{name} must be at least 1, not {value}")


def session_info(row: sa.Row[Any]) -> SessionInfo:
    """A ``hs_sessions`` row as a :class:`SessionInfo`."""
    return SessionInfo(
        session_id=row.session_id,
        items=row.item_count,
        turns=row.turn_count,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        metadata=row.metadata,
    )


def _has_key(dialect: str, key: str, value: str | None = None) -> sa.ColumnElement[bool]:
    """The session's metadata has ``key`` (whose value, as text, is ``value`` when given)."""
    column = _sessions.c.metadata
    if dialect == "sqlite":
        entries = sa.func.json_each(column).table_valued("key", "value")
        condition = entries.c.key == key
        if value is not None:
            condition = condition & (sa.cast(entries.c.value, sa.Text) == value)
        return sa.exists(sa.select(entries.c.key).where(condition))
    if value is not None:
        equal: sa.ColumnElement[bool] = column[key].as_string() == value
        return equal
    # ``json -> key`` is SQL NULL only when the key is absent (a JSON null gives 'null').
    return column[key].isnot(None)


async def sessions(
    url: Database = None,
    *,
    prefix: str | None = None,
    metadata_key: str | None = None,
    metadata_value: str | None = None,
    idle_days: float | None = None,
    after: str | None = None,
    limit: int = 50,
) -> SessionPage:
    """Sessions ordered by id, one page at a time.

    Args:
        prefix: only ids starting with this string (case-sensitive).
        metadata_key: only sessions whose metadata object has this key.
        metadata_value: with ``metadata_key``, only sessions where that key's value, as text,
            is this string (``"acme"`` for ``"acme"``, ``"3"`` for ``3``).
        idle_days: only sessions with no activity for at least this many days.
        after: the cursor: only ids greater than this (a previous page's ``next_after``).
        limit: the page size (at least 1).
    """
    async with reading(url) as engine, engine.connect() as connection:
        return await session_page(
            connection,
            prefix=prefix,
            metadata_key=metadata_key,
            metadata_value=metadata_value,
            idle_days=idle_days,
            after=after,
            limit=limit,
        )


async def session_page(
    connection: AsyncConnection,
    *,
    prefix: str | None = None,
    metadata_key: str | None = None,
    metadata_value: str | None = None,
    idle_days: float | None = None,
    after: str | None = None,
    limit: int = 50,
) -> SessionPage:
    """:func:`sessions` on a connection the caller holds open (the viewer keeps one engine).

    The page is read by keyset on the primary key: ``session_id > after ORDER BY session_id
    LIMIT limit + 1``, so a page costs the same at the start and the end of 100k sessions.
    """
    _check_limit("limit", limit)
    if metadata_value is not None and metadata_key is None:
        raise InvalidArgumentError("metadata_value needs metadata_key: name the key to compare")
    statement = sa.select(_sessions).order_by(_sessions.c.session_id).limit(limit + 1)
    if prefix:
        # >= lets the primary key index seek; substr makes the match exact and
        # case-sensitive (LIKE is neither on SQLite).
        statement = statement.where(
            _sessions.c.session_id >= prefix,
            sa.func.substr(_sessions.c.session_id, 1, len(prefix)) == prefix,
        )
    if metadata_key is not None:
        dialect = connection.dialect.name
        statement = statement.where(_has_key(dialect, metadata_key, metadata_value))
    if idle_days is not None:
        cutoff = datetime.now(timezone.utc) - timedelta(days=idle_days)
        statement = statement.where(_sessions.c.updated_at <= cutoff)
    if after is not None:
        statement = statement.where(_sessions.c.session_id > after)
    rows = (await connection.execute(statement)).all()
    page = [session_info(row) for row in rows[:limit]]
    next_after = page[-1].session_id if len(rows) > limit else None
    return SessionPage(sessions=page, next_after=next_after)


async def require_session(connection: AsyncConnection, session_id: str) -> sa.Row[Any]:
    """The ``hs_sessions`` row of ``session_id``; :class:`SessionNotFoundError` if none."""
    row = (
        await connection.execute(sa.select(_sessions).where(_sessions.c.session_id == session_id))
    ).first()
    if row is None:
        raise SessionNotFoundError(
            f"no session {session_id!r} in this database; list them with: history-store sessions"
        )
    return row


async def show(
    session_id: str,
    url: Database = None,
    *,
    turn: int | None = None,
    last: int | None = None,
) -> list[ItemRow]:
    """The items of a session in order; ``turn`` keeps one turn, ``last`` the last N turns.

    Raises :class:`SessionNotFoundError` when the session does not exist.
    """
    _check_limit("last", last)
    async with reading(url) as engine, engine.connect() as connection:
        session = await require_session(connection, session_id)
        statement = sa.select(_items).where(_items.c.session_id == session_id)
        if turn is not None:
            statement = statement.where(_items.c.turn == turn)
        if last is not None:
            statement = statement.where(_items.c.turn > session.turn_count - last)
        rows = (await connection.execute(statement.order_by(_items.c.seq))).all()
    return item_rows(rows)


def _parsed(item_json: str) -> Any:
    try:
        return load_item(item_json)
    except ValueError:
        return None


def item_rows(rows: Sequence[sa.Row[Any]]) -> list[ItemRow]:
    """``hs_items`` rows as :class:`ItemRow` objects, their JSON parsed (``None`` if corrupt)."""
    items = load_items([row.item for row in rows])
    if items is None:  # some row is corrupt (or needs the exact parser): one by one
        items = [_parsed(row.item) for row in rows]
    return [
        ItemRow(
            seq=row.seq,
            turn=row.turn,
            role=row.role,
            item_type=row.item_type,
            text=row.text,
            created_at=as_utc(row.created_at),
            item=item,
        )
        for row, item in zip(rows, items, strict=True)
    ]


def fts5_query(text: str) -> str:
    """Every word of ``text`` as a quoted FTS5 phrase, so punctuation is never syntax."""
    return " ".join('"' + word.replace('"', '""') + '"' for word in text.split())


# Constant statements: the search words, session and limit are always bound.
_SQLITE_SEARCH = """
    SELECT i.session_id, i.seq, i.turn, i.role, i.item_type, i.text
    FROM hs_items_fts f JOIN hs_items i ON i.rowid = f.rowid
    WHERE hs_items_fts MATCH :query AND (:session_id IS NULL OR i.session_id = :session_id)
    ORDER BY i.session_id, i.seq LIMIT :limit
"""
# The expression matches ix_hs_items_text_fts exactly, so PostgreSQL uses that index.
_PG_SEARCH = """
    SELECT i.session_id, i.seq, i.turn, i.role, i.item_type, i.text FROM hs_items i
    WHERE to_tsvector('simple', coalesce(i.text, '')) @@ plainto_tsquery('simple', :query)
      AND (CAST(:session_id AS text) IS NULL OR i.session_id = :session_id)
    ORDER BY i.session_id, i.seq LIMIT :limit
"""


async def search(
    text: str,
    url: Database = None,
    *,
    session_id: str | None = None,
    limit: int = 50,
) -> list[SearchHit]:
    """Items whose text contains every word of ``text``, in session and seq order.

    Matching is by whole words, case-insensitive (SQLite FTS5 ``unicode61``; PostgreSQL
    ``to_tsvector('simple', ...)``). ``session_id`` limits the search to one session.
    """
    _check_search(text, limit)
    async with reading(url) as engine, engine.connect() as connection:
        return await search_hits(connection, text, session_id=session_id, limit=limit)


def _check_search(text: str, limit: int) -> None:
    _check_limit("limit", limit)
    if not text.split():
        raise InvalidArgumentError("search text is empty; give at least one word")


async def search_hits(
    connection: AsyncConnection, text: str, *, session_id: str | None = None, limit: int = 50
) -> list[SearchHit]:
    """:func:`search` on a connection the caller holds open."""
    _check_search(text, limit)
    if connection.dialect.name != "sqlite":
        rows = await connection.execute(
            sa.text(_PG_SEARCH), {"query": text, "session_id": session_id, "limit": limit}
        )
        return [SearchHit(*row) for row in rows]
    indexed = await connection.execute(
        sa.text(_SQLITE_SEARCH),
        {"query": fts5_query(text), "session_id": session_id, "limit": limit},
    )
    hits = [SearchHit(*row) for row in indexed]
    # Rows written since the index was last brought up to date (see backends/sqlite_fts.py).
    query_words = search_index.words(text)
    queued = await connection.execute(
        sa.text(search_index.PENDING_ROWS), {"session_id": session_id}
    )
    hits += [SearchHit(*row) for row in queued if search_index.matches(query_words, row.text)]
    hits.sort(key=lambda hit: (hit.session_id, hit.seq))
    return hits[:limit]


async def _database_bytes(connection: AsyncConnection) -> int:
    if connection.dialect.name == "sqlite":
        pages = (await connection.exec_driver_sql("PRAGMA page_count")).scalar_one()
        size = (await connection.exec_driver_sql("PRAGMA page_size")).scalar_one()
        return int(pages) * int(size)
    value = await connection.scalar(sa.text("SELECT pg_database_size(current_database())"))
    return int(value or 0)


async def stats(url: Database = None) -> Stats:
    """Totals over the whole database: sessions, items, turns, activity span, size, and the
    number of items of each type."""
    async with reading(url) as engine, engine.connect() as connection:
        totals = (
            await connection.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(_sessions.c.item_count), 0),
                    sa.func.coalesce(sa.func.sum(_sessions.c.turn_count), 0),
                    sa.func.min(_sessions.c.created_at),
                    sa.func.max(_sessions.c.updated_at),
                )
            )
        ).one()
        by_type = await connection.execute(
            sa.select(_items.c.item_type, sa.func.count())
            .group_by(_items.c.item_type)
            .order_by(_items.c.item_type)
        )
        counts = {str(name): int(count) for name, count in by_type}
        size = await _database_bytes(connection)
    first, last = totals[3], totals[4]
    return Stats(
        sessions=int(totals[0]),
        items=int(totals[1]),
        turns=int(totals[2]),
        first_activity=as_utc(first) if first is not None else None,
        last_activity=as_utc(last) if last is not None else None,
        database_bytes=size,
        items_by_type=counts,
    )
