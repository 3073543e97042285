"""Turn status and usage: hs_turns, and the status column of hs_messages.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

``hs_turns`` has one row per turn: how it ended (``completed``, ``failed``, ``blocked`` by a
guardrail, ``interrupted`` for a human-in-the-loop pause) and the usage the provider reported
for it. Items of a ``failed`` or ``blocked`` turn stay in ``hs_items`` for audit but are never
sent to a model again. Turns stored before this revision are back-filled as ``completed``
with their first and last item's time and no usage. Downgrading drops the table (and the
statuses with it); every item stays.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BACKFILL = """
    INSERT INTO hs_turns (session_id, turn, status, started_at, finished_at)
    SELECT session_id, turn, 'completed', min(created_at), max(created_at)
    FROM hs_items WHERE turn > 0 GROUP BY session_id, turn
"""

# hs_messages of revision 0002 with the turn's status at the end (NULL: no row in hs_turns).
_MESSAGES = {
    "sqlite": """
    CREATE VIEW hs_messages AS
    SELECT i.session_id, i.turn, i.seq, i.role, i.item_type, i.text, i.created_at,
           CASE WHEN i.item_type LIKE '%call%' THEN json_extract(i.item, '$.call_id') END
               AS call_id,
           CASE WHEN i.item_type LIKE '%call%' THEN json_extract(i.item, '$.name') END AS name,
           t.status
    FROM hs_items i LEFT JOIN hs_turns t ON t.session_id = i.session_id AND t.turn = i.turn
    """,
    "postgresql": """
    CREATE VIEW hs_messages AS
    SELECT i.session_id, i.turn, i.seq, i.role, i.item_type, i.text, i.created_at,
           CASE WHEN i.item_type LIKE '%call%' THEN i.item::json ->> 'call_id' END AS call_id,
           CASE WHEN i.item_type LIKE '%call%' THEN i.item::json ->> 'name' END AS name,
           t.status
    FROM hs_items i LEFT JOIN hs_turns t ON t.session_id = i.session_id AND t.turn = i.turn
    """,
}

_MESSAGES_0002 = {
    "sqlite": """
    CREATE VIEW hs_messages AS
    SELECT session_id, turn, seq, role, item_type, text, created_at,
           CASE WHEN item_type LIKE '%call%' THEN json_extract(item, '$.call_id') END AS call_id,
           CASE WHEN item_type LIKE '%call%' THEN json_extract(item, '$.name') END AS name
    FROM hs_items
    """,
    "postgresql": """
    CREATE VIEW hs_messages AS
    SELECT session_id, turn, seq, role, item_type, text, created_at,
           CASE WHEN item_type LIKE '%call%' THEN item::json ->> 'call_id' END AS call_id,
           CASE WHEN item_type LIKE '%call%' THEN item::json ->> 'name' END AS name
    FROM hs_items
    """,
}


def upgrade() -> None:
    op.create_table(
        "hs_turns",
        sa.Column("session_id", sa.String(1024), nullable=False),
        sa.Column("turn", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("agent", sa.Text(), nullable=True),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("requests", sa.Integer(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("total_tokens", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["hs_sessions.session_id"],
            name=op.f("fk_hs_turns_session_id_hs_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "turn", name=op.f("pk_hs_turns")),
    )
    op.execute(_BACKFILL)
    dialect = op.get_context().dialect.name
    op.execute("DROP VIEW hs_messages")
    op.execute(_MESSAGES[dialect])


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    op.execute("DROP VIEW hs_messages")
    op.execute(_MESSAGES_0002[dialect])
    op.drop_table("hs_turns")
