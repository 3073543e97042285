"""The tables history_store keeps, as SQLAlchemy Core objects.

This module describes the schema at the newest revision; the schema in a database is created
and changed only by the Alembic revisions in ``migrations/``. ``docs/schema.md`` documents
every column.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

sessions = Table(
    "hs_sessions",
    metadata,
    Column("session_id", String(1024), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, index=True),
    Column("metadata", JSON, nullable=True),
    # Items currently stored, and user turns seen so far.
    Column("item_count", Integer, nullable=False, server_default="0"),
    Column("turn_count", Integer, nullable=False, server_default="0"),
    # Highest seq ever handed out: seq never goes back, even after pop_item.
    Column("last_seq", BigInteger, nullable=False, server_default="0"),
    # The estimated tokens (hs_items.tokens) of every item ever stored: like last_seq it
    # never goes back, so hs_items.cumulative_tokens only grows with seq.
    Column("cumulative_tokens", BigInteger, nullable=False, server_default="0"),
)

items = Table(
    "hs_items",
    metadata,
    Column(
        "session_id",
        String(1024),
        ForeignKey("hs_sessions.session_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # The only ordering key: (session_id, seq) is the primary key, so reading the latest N
    # items walks N index entries whatever the session's size.
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("turn", Integer, nullable=False),
    Column("role", Text, nullable=True),
    Column("item_type", Text, nullable=False),
    Column("text", Text, nullable=True),
    Column("item", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The item's estimated token count, and the session's running total through it: the
    # total only grows with seq, so the oldest item of a token window is one index lookup.
    Column("tokens", Integer, nullable=True),
    Column("cumulative_tokens", BigInteger, nullable=True),
    Index("ix_hs_items_session_id_cumulative_tokens", "session_id", "cumulative_tokens"),
)

# One row per turn a history_store run finished: how it ended and what the provider reported
# for it. A turn without a row (written by plain agents.Runner, or cut short by a crash) counts
# as completed for what is sent.
turns = Table(
    "hs_turns",
    metadata,
    Column(
        "session_id",
        String(1024),
        ForeignKey("hs_sessions.session_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("turn", Integer, primary_key=True, autoincrement=False),
    # completed | failed | blocked | interrupted (TURN_STATUSES)
    Column("status", Text, nullable=False),
    Column("agent", Text, nullable=True),
    Column("model", Text, nullable=True),
    Column("requests", Integer, nullable=True),
    Column("input_tokens", Integer, nullable=True),
    Column("output_tokens", Integer, nullable=True),
    Column("total_tokens", Integer, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    # history_store's own estimate of the turn's requests' input (calibration: the provider's
    # input_tokens over it), and the oldest stored item its last request carried.
    Column("estimated_input_tokens", Integer, nullable=True),
    Column("window_first_seq", BigInteger, nullable=True),
)

# Summaries of the items that fell out of a session's token window, newest last.
summaries = Table(
    "hs_summaries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "session_id",
        String(1024),
        ForeignKey("hs_sessions.session_id", ondelete="CASCADE"),
        nullable=False,
    ),
    # The stored items it stands for: seq first_seq..last_seq (folding in every earlier one).
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("text", Text, nullable=False),
    Column("tokens", Integer, nullable=False),
    Column("model", Text, nullable=True),
    Column("input_tokens", Integer, nullable=True),
    Column("output_tokens", Integer, nullable=True),
    Column("total_tokens", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_hs_summaries_session_id_last_seq", "session_id", "last_seq"),
)

VIEWS = ("hs_messages", "hs_session_summary", "hs_context")
"""The views the revisions create, for people reading with SQL (``docs/schema.md``)."""

TURN_STATUSES = ("completed", "failed", "blocked", "interrupted")
"""The values of ``hs_turns.status``."""

HIDDEN_STATUSES = ("failed", "blocked")
"""Turn statuses whose items stay stored for audit but are never sent to a model again."""
