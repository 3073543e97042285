"""Write history_store's sessions back into the Agents SDK's session tables.

The target gets the two tables that ``agents.SQLiteSession`` (SQLite) and
``agents.extensions.memory.SQLAlchemySession`` (any database) read: ``agent_sessions`` and
``agent_messages`` by default. A session exported there reads back, through either SDK class,
as exactly the items :class:`~history_store.HistorySession` returns.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import (
    TIMESTAMP,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    inspect,
    select,
)
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import text as sql_text

from .. import tables
from .._engine import WRITE_OPTIONS, redact
from ..errors import (
    ImportFormatError,
    InvalidArgumentError,
    SessionExistsError,
    SessionNotFoundError,
)
from ._open import Database, database_url, foreign, keyset_pages, reading
from ._progress import Progress, Tally
from .sdk_import import OnExisting, source_url

__all__ = ["SdkExportReport", "export_to_sdk", "sdk_tables"]


@dataclass
class SdkExportReport:
    """The outcome of :func:`export_to_sdk`: sessions written and sessions left alone
    because the target already had them."""

    source: str
    target: str
    exported: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    items: int = 0


def sdk_tables(sessions_table: str, messages_table: str) -> tuple[Table, Table]:
    """The SDK's two tables, laid out as ``SQLAlchemySession`` creates them.

    ``SQLiteSession`` opens the same layout (its ``CREATE TABLE IF NOT EXISTS`` finds them).
    ``created_at`` keeps its ``CURRENT_TIMESTAMP`` default on purpose: the SDK orders by it,
    and copied historic timestamps could sort the exported items after items the SDK appends
    later (PostgreSQL stores them in the server's time zone).
    """
    metadata = MetaData()
    sessions = Table(
        sessions_table,
        metadata,
        Column("session_id", String, primary_key=True),
        Column("created_at", TIMESTAMP, server_default=sql_text("CURRENT_TIMESTAMP"),
               nullable=False),
        Column("updated_at", TIMESTAMP, server_default=sql_text("CURRENT_TIMESTAMP"),
               nullable=False),
    )  # fmt: skip
    messages = Table(
        messages_table,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("session_id", String,
               ForeignKey(f"{sessions_table}.session_id", ondelete="CASCADE"), nullable=False),
        Column("message_data", Text, nullable=False),
        Column("created_at", TIMESTAMP, server_default=sql_text("CURRENT_TIMESTAMP"),
               nullable=False),
        Index(f"idx_{messages_table}_session_time", "session_id", "created_at"),
        sqlite_autoincrement=True,
    )  # fmt: skip
    return sessions, messages


def _create_or_check(connection: Connection, sessions: Table, messages: Table) -> None:
    inspector = inspect(connection)
    for wanted in (sessions, messages):
        if inspector.has_table(wanted.name):
            found = {col["name"] for col in inspector.get_columns(wanted.name)}
            missing = {col.name for col in wanted.columns} - found
            if missing:
                raise ImportFormatError(
                    f"table {wanted.name!r} exists at the target but is not an SDK session "
                    f"table (no column {', '.join(sorted(missing))}); pick other names with "
                    "--sessions-table/--messages-table"
                )
    sessions.metadata.create_all(connection, checkfirst=True)


async def _export_one(
    source: AsyncConnection,
    target: AsyncEngine,
    session_id: str,
    sdk: tuple[Table, Table],
    options: tuple[int, OnExisting, Tally],
) -> int | None:
    """Export one session in one target transaction; ``None`` if the target has it already."""
    sessions, messages = sdk
    batch_size, on_existing, tally = options
    items = tables.items
    async with target.connect() as connection:
        await connection.execution_options(**WRITE_OPTIONS)
        async with connection.begin():
            present = await connection.scalar(
                select(func.count()).where(messages.c.session_id == session_id)
            ) or await connection.scalar(
                select(func.count()).where(sessions.c.session_id == session_id)
            )
            if present:
                if on_existing == "error":
                    raise SessionExistsError(
                        f"session {session_id!r} already exists in the SDK tables at the "
                        "target; nothing of it was written. Use --on-existing skip."
                    )
                return None
            await connection.execute(sessions.insert().values(session_id=session_id))
            written, last = 0, 0
            while True:
                page = (
                    await source.execute(
                        select(items.c.seq, items.c.item)
                        .where(items.c.session_id == session_id, items.c.seq > last)
                        .order_by(items.c.seq)
                        .limit(batch_size)
                    )
                ).all()
                if page:
                    # The stored JSON text goes across unchanged: the SDK json.loads it.
                    rows = [{"session_id": session_id, "message_data": row[1]} for row in page]
                    await connection.execute(messages.insert(), rows)
                    written += len(page)
                    last = page[-1][0]
                    tally.add(len(page))
                if len(page) < batch_size:
                    return written


async def export_to_sdk(
    target: str | os.PathLike[str] | URL,
    *,
    url: Database = None,
    sessions_table: str = "agent_sessions",
    messages_table: str = "agent_messages",
    session_ids: Sequence[str] | None = None,
    on_existing: OnExisting = "skip",
    batch_size: int = 1000,
    progress: Progress | None = None,
) -> SdkExportReport:
    """Copy history_store sessions at ``url`` into the SDK's session tables at ``target``.

    Args:
        target: URL, or path of an SQLite file, to write the SDK's tables into (created if
            missing; may be the same database as ``url``).
        url: the history_store database (default: ``$HISTORY_STORE_URL``, else
            ``./history.db``); opened read-only, its schema must be at head.
        sessions_table, messages_table: the table names the SDK session will be given.
        session_ids: export only these sessions (default: all).
        on_existing: a session the target already has (rows in either table) is left as it
            is (``skip``: re-running never duplicates) or raises :class:`SessionExistsError`.
        batch_size: items read and written per round (memory is flat in history size).
        progress: called as ``progress(done, total)`` after each batch: items written so
            far, and in all of the sessions to export.

    Each session is written in one transaction. Item order, and each item's JSON text, are
    kept; branches, turns and metadata have no place in the SDK's tables and are dropped.
    """
    if batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be >= 1, not {batch_size}")
    src_url = database_url(url)
    dst_url = source_url(target)
    report = SdkExportReport(source=redact(src_url), target=redact(dst_url))
    sdk = sdk_tables(sessions_table, messages_table)
    async with foreign(dst_url) as dst:
        async with dst.connect() as connection:
            await connection.execution_options(**WRITE_OPTIONS)
            async with connection.begin():
                await connection.run_sync(_create_or_check, *sdk)
        async with reading(url) as src, src.connect() as source:
            tally = Tally(progress, await _item_total(source, session_ids))
            ids: AsyncIterator[str] | None = (
                None
                if session_ids is not None
                else keyset_pages(source, tables.sessions.c.session_id)
            )
            async for session_id in _iterate(session_ids, ids):
                if session_ids is not None:
                    await _require_session(source, session_id, src_url)
                written = await _export_one(
                    source, dst, session_id, sdk, (batch_size, on_existing, tally)
                )
                if written is None:
                    report.existing.append(session_id)
                else:
                    report.exported.append(session_id)
                    report.items += written
    return report


async def _item_total(source: AsyncConnection, session_ids: Sequence[str] | None) -> int:
    counters = tables.sessions
    statement = select(func.coalesce(func.sum(counters.c.item_count), 0))
    if session_ids is not None:
        statement = statement.where(counters.c.session_id.in_(list(session_ids)))
    return int(await source.scalar(statement) or 0)


async def _require_session(source: AsyncConnection, session_id: str, url: URL) -> None:
    found = await source.scalar(
        select(tables.sessions.c.session_id).where(tables.sessions.c.session_id == session_id)
    )
    if found is None:
        raise SessionNotFoundError(
            f"no session {session_id!r} in {redact(url)}; list them with `history-store "
            "sessions` or drop --session to export every session"
        )


async def _iterate(
    given: Sequence[str] | None, found: AsyncIterator[str] | None
) -> AsyncIterator[str]:
    if given is not None:
        for session_id in given:
            yield session_id
    elif found is not None:
        async for session_id in found:
            yield session_id
