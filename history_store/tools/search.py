"""Full-text search over every session's items: the function behind ``history-store search``.

SQLite searches its FTS5 index, plus the few rows written since it was last brought up to
date (``backends/sqlite_fts.py``); PostgreSQL its GIN ``to_tsvector('simple', ...)`` index.
Both match whole words, case-insensitively, every word of the query.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..backends import sqlite_fts as search_index
from ..errors import InvalidArgumentError
from ._open import Database, reading

__all__ = ["SearchHit", "fts5_query", "search", "search_hits"]


@dataclass(frozen=True)
class SearchHit:
    """One item whose text matched a :func:`search`."""

    session_id: str
    seq: int
    turn: int
    role: str | None
    item_type: str
    text: str


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
    if limit < 1:
        raise InvalidArgumentError(f"limit must be at least 1, not {limit}")
    if not text.split():
        raise InvalidArgumentError("search text is empty; give at least one word")


async def search_hits(
    connection: AsyncConnection, text: str, *, session_id: str | None = None, limit: int = 50
) -> list[SearchHit]:
    """:func:`search` on a connection the caller holds open (the viewer keeps one engine)."""
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
