"""SQLite's full-text index over ``hs_items.text``, kept up to date in bulk.

Indexing each row as it is written (an FTS5 trigger) cost more than the rest of an
``add_items`` together: FTS5 writes a new index segment per transaction. So a trigger only
queues the new row's rowid in ``hs_items_fts_pending``; the writer moves the queue into the
index in bulk (about 1.5 µs a row) every :data:`FLUSH_EVERY_ROWS` rows, and when the store
closes. A search matches indexed rows with FTS5 and the few queued ones here, by the same
rules (whole words, case and accents ignored), so results never lag behind the writes.
Deleting a row removes it from the index or the queue, whichever holds it (a trigger).
"""

from __future__ import annotations

import sqlite3
import unicodedata
from collections.abc import Iterable

FLUSH_EVERY_ROWS = 256
"""Queued rows a writer lets pile up before it indexes them (per process)."""

# Constant statements; the table names are those of migrations/versions/0002.
FLUSH = (
    "INSERT INTO hs_items_fts (rowid, text) SELECT i.rowid, i.text "
    "FROM hs_items_fts_pending p JOIN hs_items i ON i.rowid = p.item_rowid",
    "DELETE FROM hs_items_fts_pending",
)
REBUILD = (
    "DELETE FROM hs_items_fts_pending",
    "INSERT INTO hs_items_fts (hs_items_fts) VALUES ('rebuild')",
)
PENDING_ROWS = """
    SELECT i.session_id, i.seq, i.turn, i.role, i.item_type, i.text
    FROM hs_items_fts_pending p JOIN hs_items i ON i.rowid = p.item_rowid
    WHERE :session_id IS NULL OR i.session_id = :session_id
"""


def flush(connection: sqlite3.Connection) -> None:
    """Index every queued row (inside the caller's write transaction)."""
    for statement in FLUSH:
        connection.execute(statement)


def words(text: str) -> list[str]:
    """``text`` split into words the way FTS5's ``unicode61`` tokenizer does: runs of letters
    and digits, case folded, accents removed."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    kept = "".join(
        char if unicodedata.category(char)[0] in "LN" else " "
        for char in folded
        if not unicodedata.combining(char)
    )
    return kept.split()


def matches(query_words: Iterable[str], text: str | None) -> bool:
    """True if ``text`` holds every one of ``query_words`` (see :func:`words`)."""
    present = set(words(text or ""))
    return all(word in present for word in query_words)
