"""Readable views (hs_messages, hs_session_summary) and full-text search over hs_items.text.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

SQLite gets an FTS5 external-content table (``hs_items_fts``) over ``hs_items``, new rows
queued by a trigger in ``hs_items_fts_pending`` and indexed in bulk; PostgreSQL gets a GIN
index on ``to_tsvector('simple', coalesce(text, ''))``. ``history_store.search``
queries whichever is there.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Only call-like items (function_call, function_call_output, ...) carry call_id and name;
# parsing only their JSON keeps one corrupt message row from failing every query on the view.

_SQLITE_VIEWS = (
    """
    CREATE VIEW hs_messages AS
    SELECT session_id, turn, seq, role, item_type, text, created_at,
           CASE WHEN item_type LIKE '%call%' THEN json_extract(item, '$.call_id') END AS call_id,
           CASE WHEN item_type LIKE '%call%' THEN json_extract(item, '$.name') END AS name
    FROM hs_items
    """,
    """
    CREATE VIEW hs_session_summary AS
    SELECT session_id, item_count AS items, turn_count AS turns,
           created_at AS first_activity, updated_at AS last_activity,
           julianday('now') - julianday(updated_at) AS idle_days, metadata
    FROM hs_sessions
    """,
)

_PG_VIEWS = (
    """
    CREATE VIEW hs_messages AS
    SELECT session_id, turn, seq, role, item_type, text, created_at,
           CASE WHEN item_type LIKE '%call%' THEN item::json ->> 'call_id' END AS call_id,
           CASE WHEN item_type LIKE '%call%' THEN item::json ->> 'name' END AS name
    FROM hs_items
    """,
    """
    CREATE VIEW hs_session_summary AS
    SELECT session_id, item_count AS items, turn_count AS turns,
           created_at AS first_activity, updated_at AS last_activity,
           EXTRACT(EPOCH FROM (now() - updated_at)) / 86400 AS idle_days, metadata
    FROM hs_sessions
    """,
)

# External content: the text lives once, in hs_items; the FTS table holds only the index,
# keyed by hs_items' rowid. New rows are queued in hs_items_fts_pending and indexed in bulk
# (history_store/backends/sqlite_fts.py says why); NULL text is never indexed.
_SQLITE_FTS = (
    "CREATE VIRTUAL TABLE hs_items_fts USING fts5(text, content='hs_items', content_rowid='rowid')",
    "CREATE TABLE hs_items_fts_pending (item_rowid INTEGER PRIMARY KEY)",
    """
    CREATE TRIGGER hs_items_fts_insert AFTER INSERT ON hs_items WHEN new.text IS NOT NULL
    BEGIN
        INSERT OR IGNORE INTO hs_items_fts_pending (item_rowid) VALUES (new.rowid);
    END
    """,
    """
    CREATE TRIGGER hs_items_fts_delete AFTER DELETE ON hs_items WHEN old.text IS NOT NULL
    BEGIN
        INSERT INTO hs_items_fts (hs_items_fts, rowid, text)
            SELECT 'delete', old.rowid, old.text
            WHERE NOT EXISTS (SELECT 1 FROM hs_items_fts_pending WHERE item_rowid = old.rowid);
        DELETE FROM hs_items_fts_pending WHERE item_rowid = old.rowid;
    END
    """,
    """
    CREATE TRIGGER hs_items_fts_update AFTER UPDATE OF text ON hs_items
    BEGIN
        INSERT INTO hs_items_fts (hs_items_fts, rowid, text)
            SELECT 'delete', old.rowid, old.text
            WHERE old.text IS NOT NULL AND NOT EXISTS
                (SELECT 1 FROM hs_items_fts_pending WHERE item_rowid = old.rowid);
        INSERT OR IGNORE INTO hs_items_fts_pending (item_rowid)
            SELECT new.rowid WHERE new.text IS NOT NULL;
    END
    """,
    # Index the rows stored before this revision.
    "INSERT INTO hs_items_fts (hs_items_fts) VALUES ('rebuild')",
)

_PG_FTS = (
    "CREATE INDEX ix_hs_items_text_fts ON hs_items "
    "USING gin (to_tsvector('simple', coalesce(text, '')))",
)


_SQLITE_DROP_FTS = (
    "DROP TRIGGER IF EXISTS hs_items_fts_insert",
    "DROP TRIGGER IF EXISTS hs_items_fts_delete",
    "DROP TRIGGER IF EXISTS hs_items_fts_update",
    "DROP TABLE IF EXISTS hs_items_fts_pending",
    "DROP TABLE IF EXISTS hs_items_fts",
)


def upgrade() -> None:
    sqlite = op.get_context().dialect.name == "sqlite"
    for statement in (_SQLITE_VIEWS + _SQLITE_FTS) if sqlite else (_PG_VIEWS + _PG_FTS):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS hs_session_summary")
    op.execute("DROP VIEW IF EXISTS hs_messages")
    if op.get_context().dialect.name == "sqlite":
        for statement in _SQLITE_DROP_FTS:
            op.execute(statement)
    else:
        op.execute("DROP INDEX IF EXISTS ix_hs_items_text_fts")
