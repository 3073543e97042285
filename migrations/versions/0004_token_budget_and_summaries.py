"""Token budget: each item's token count and a running total, summaries, hs_context.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

* ``hs_items.tokens``: the item's estimated token count, counted when it is stored;
  ``hs_items.cumulative_tokens``: the session's running total through it, indexed with the
  session, so finding where a token window starts is one index lookup however long the
  history. ``hs_sessions.cumulative_tokens`` is the total so far.
* ``hs_turns.estimated_input_tokens`` (what history_store estimated its requests' input at,
  beside the ``input_tokens`` the provider reported: the calibration) and
  ``hs_turns.window_first_seq`` (the oldest stored item its last request carried).
* ``hs_summaries``: summaries of item ranges that fell out of the window.
* the view ``hs_context``: which turns the current window covers.

Items stored before this revision get their counts here (the documented estimate:
characters / 4 + 4 per item), so every row has them. Downgrading drops all of it; every item
stays.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 5000

# A turn is summarized when it ends at or before the newest summary's last seq; in the
# window when the latest budgeted request carried it (it starts at or after that request's
# window_first_seq; every visible turn, when none recorded a window) and it has not been
# summarized since. Failed and blocked turns are in neither.
_CONTEXT = """
CREATE VIEW hs_context AS
WITH spans AS (
    SELECT session_id, turn, min(seq) AS first_seq, max(seq) AS last_seq,
           count(*) AS items, sum(tokens) AS tokens
    FROM hs_items GROUP BY session_id, turn
), latest AS (
    SELECT t.session_id, t.window_first_seq FROM hs_turns t
    WHERE t.window_first_seq IS NOT NULL AND t.turn = (
        SELECT max(l.turn) FROM hs_turns l
        WHERE l.session_id = t.session_id AND l.window_first_seq IS NOT NULL)
), newest AS (
    SELECT session_id, max(last_seq) AS last_seq FROM hs_summaries GROUP BY session_id
), marked AS (
    SELECT s.session_id, s.turn, s.first_seq, s.last_seq, s.items, s.tokens, t.status,
           w.window_first_seq,
           CASE WHEN t.status IN ('failed', 'blocked') THEN 0
                WHEN m.last_seq IS NOT NULL AND s.last_seq <= m.last_seq THEN 1
                ELSE 0 END AS summarized
    FROM spans s
    LEFT JOIN hs_turns t ON t.session_id = s.session_id AND t.turn = s.turn
    LEFT JOIN latest w ON w.session_id = s.session_id
    LEFT JOIN newest m ON m.session_id = s.session_id
)
SELECT session_id, turn, first_seq, last_seq, items, tokens, status,
       CASE WHEN status IN ('failed', 'blocked') OR summarized = 1 THEN 0
            WHEN window_first_seq IS NULL OR first_seq >= window_first_seq THEN 1
            ELSE 0 END AS in_window,
       summarized
FROM marked
"""


def _estimate(item_json: str) -> int:
    # The library's documented estimate; rows it counts keep their numbers if the
    # estimate changes later (counts are only ever estimates, calibrated at use).
    import json

    from history_store.budget.tokens import EstimateCounter

    try:
        item = json.loads(item_json)
    except ValueError:
        return 4
    return EstimateCounter().count_item(item) if isinstance(item, dict) else 4


def _count_existing_items() -> None:
    """Count every stored item and its session's running total, in seq order."""
    connection = op.get_bind()
    items = sa.table(
        "hs_items",
        sa.column("session_id"),
        sa.column("seq"),
        sa.column("item"),
        sa.column("tokens"),
        sa.column("cumulative_tokens"),
    )
    sessions = sa.table("hs_sessions", sa.column("session_id"), sa.column("cumulative_tokens"))
    session_ids = [row[0] for row in connection.execute(sa.select(sessions.c.session_id))]
    for session_id in session_ids:
        total, last = 0, 0
        while True:
            rows = connection.execute(
                sa.select(items.c.seq, items.c.item)
                .where(items.c.session_id == session_id, items.c.seq > last)
                .order_by(items.c.seq)
                .limit(_BATCH)
            ).all()
            updates = []
            for seq, item_json in rows:
                tokens = _estimate(item_json)
                total += tokens
                updates.append({"s": session_id, "q": seq, "t": tokens, "c": total})
            if updates:
                connection.execute(
                    items.update()
                    .where(
                        items.c.session_id == sa.bindparam("s"), items.c.seq == sa.bindparam("q")
                    )
                    .values(tokens=sa.bindparam("t"), cumulative_tokens=sa.bindparam("c")),
                    updates,
                )
                last = rows[-1][0]
            if len(rows) < _BATCH:
                break
        connection.execute(
            sessions.update()
            .where(sessions.c.session_id == session_id)
            .values(cumulative_tokens=total)
        )


# Plain ALTER TABLE, which SQLite (3.35 and later, as RETURNING needs) and PostgreSQL both
# take: a batch migration would rebuild hs_items on SQLite, renumbering the rowids the
# full-text index is keyed on and dropping its triggers.
_ADD_COLUMNS = (
    "ALTER TABLE hs_items ADD COLUMN tokens INTEGER",
    "ALTER TABLE hs_items ADD COLUMN cumulative_tokens BIGINT",
    "ALTER TABLE hs_sessions ADD COLUMN cumulative_tokens BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE hs_turns ADD COLUMN estimated_input_tokens INTEGER",
    "ALTER TABLE hs_turns ADD COLUMN window_first_seq BIGINT",
)
_DROP_COLUMNS = (
    "ALTER TABLE hs_turns DROP COLUMN window_first_seq",
    "ALTER TABLE hs_turns DROP COLUMN estimated_input_tokens",
    "ALTER TABLE hs_sessions DROP COLUMN cumulative_tokens",
    "ALTER TABLE hs_items DROP COLUMN cumulative_tokens",
    "ALTER TABLE hs_items DROP COLUMN tokens",
)


def upgrade() -> None:
    for statement in _ADD_COLUMNS:
        op.execute(statement)
    _count_existing_items()
    op.create_index(
        op.f("ix_hs_items_session_id_cumulative_tokens"),
        "hs_items",
        ["session_id", "cumulative_tokens"],
    )
    op.create_table(
        "hs_summaries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(1024), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("total_tokens", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["hs_sessions.session_id"],
            name=op.f("fk_hs_summaries_session_id_hs_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hs_summaries")),
    )
    op.create_index(
        op.f("ix_hs_summaries_session_id_last_seq"), "hs_summaries", ["session_id", "last_seq"]
    )
    op.execute(_CONTEXT)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS hs_context")
    op.drop_index(op.f("ix_hs_summaries_session_id_last_seq"), table_name="hs_summaries")
    op.drop_table("hs_summaries")
    op.drop_index(op.f("ix_hs_items_session_id_cumulative_tokens"), table_name="hs_items")
    for statement in _DROP_COLUMNS:
        op.execute(statement)
