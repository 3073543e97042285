"""Adopt the Agents SDK's SQL session stores into history_store's schema.

Reads the tables that ``agents.SQLiteSession``, ``AsyncSQLiteSession`` and
``agents.extensions.memory.SQLAlchemySession`` write (``agent_sessions`` and
``agent_messages`` by default), and the extra tables of ``AdvancedSQLiteSession``
(``message_structure``, ``turn_usage``), and writes each conversation into ``hs_sessions`` /
``hs_items``: the items the SDK session would return from ``get_items()``, in that order, each
item's JSON unchanged in meaning, turns derived as :class:`~history_store.HistorySession`
derives them. The SDK's tables are only read, never changed. ``docs/migrations.md`` says what
maps where.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import func, inspect, select, update
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .. import tables
from .._engine import WRITE_OPTIONS, is_sqlite, redact, resolve_url, sqlite_path
from .._items import encode_items, validate_session_id
from ..backends.base import EncodedItem
from ..errors import (
    InvalidArgumentError,
    InvalidItemError,
    InvalidSessionIdError,
    SessionExistsError,
)
from ..schema import MigrateMode
from ..store import HistoryStore
from ._open import Database, database_url, reading, writing
from ._progress import Progress, Tally
from ._sdk_layout import (
    SdkLayout,
    branch_info,
    is_advanced,
    make_layout,
    row_pages,
)
from ._sdk_layout import session_ids as sdk_session_ids

__all__ = [
    "SdkImportReport",
    "SdkSessionReport",
    "migrate_from_sdk",
    "source_url",
]

SdkOrder = Literal["auto", "id", "created_at"]
OnExisting = Literal["skip", "error"]

METADATA_KEY = "sdk_import"
"""Key of ``hs_sessions.metadata`` under which an imported session records where it came from."""


@dataclass
class SdkSessionReport:
    """What happened to one SDK session.

    ``status`` is ``imported``, ``would_import`` (dry run), ``exists`` (already in our schema:
    left as it is) or ``invalid_id`` (an id history_store cannot store). ``skipped_rows``
    counts rows the SDK itself would not return (corrupt JSON) plus rows history_store cannot
    store (not a JSON object, NaN); ``branch`` is set for ``AdvancedSQLiteSession`` data.
    """

    session_id: str
    status: str
    items: int = 0
    turns: int = 0
    skipped_rows: int = 0
    branch: str | None = None
    reason: str | None = None


@dataclass
class SdkImportReport:
    """The outcome of :func:`migrate_from_sdk`, one entry per SDK session."""

    source: str
    destination: str
    dry_run: bool
    sessions: list[SdkSessionReport] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for entry in self.sessions if entry.status == status)

    @property
    def items(self) -> int:
        """Items imported (or, in a dry run, that would be)."""
        return sum(e.items for e in self.sessions if e.status in ("imported", "would_import"))

    @property
    def skipped_rows(self) -> int:
        return sum(entry.skipped_rows for entry in self.sessions)


def source_url(path_or_url: str | os.PathLike[str] | URL) -> URL:
    """A URL for ``path_or_url``: a URL as given, a path (no ``://``) as an SQLite file."""
    if isinstance(path_or_url, os.PathLike) or (
        isinstance(path_or_url, str) and "://" not in path_or_url
    ):
        path = Path(path_or_url).expanduser().resolve()
        return resolve_url(f"sqlite+aiosqlite:///{path}")
    return resolve_url(path_or_url)


def to_utc(value: object) -> datetime | None:
    """A stored timestamp as an aware UTC datetime; SDK and SQLite timestamps are naive UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _decode_row(message_data: Any) -> EncodedItem | None:
    """The row as we store it, or ``None`` if the SDK would skip it or we cannot store it."""
    try:
        item = json.loads(message_data)
    except (json.JSONDecodeError, TypeError):
        return None  # the SDK's get_items skips these rows too
    try:
        return encode_items([item])[0]
    except InvalidItemError:
        return None


@dataclass
class _Import:
    """One run of :func:`migrate_from_sdk`: its options and connections."""

    layout: SdkLayout
    source: AsyncConnection
    source_has_sessions: bool
    batch_size: int
    on_existing: OnExisting
    tally: Tally

    async def session_times(self, session_id: str) -> tuple[datetime | None, datetime | None]:
        if not self.source_has_sessions:
            return None, None
        s = self.layout.sessions
        row = (
            await self.source.execute(
                select(s.c.created_at, s.c.updated_at).where(s.c.session_id == session_id)
            )
        ).first()
        return (to_utc(row[0]), to_utc(row[1])) if row else (None, None)

    async def count_only(self, session_id: str, entry: SdkSessionReport) -> None:
        advanced = await is_advanced(self.source, self.layout, session_id)
        entry.branch = self.layout.branch if advanced else None
        async for page in row_pages(
            self.source, self.layout, session_id, advanced, self.batch_size
        ):
            for row in page:
                encoded = _decode_row(row[-2])
                if encoded is None:
                    entry.skipped_rows += 1
                else:
                    entry.items += 1
                    entry.turns += encoded.starts_turn

    async def write(self, dst: AsyncConnection, session_id: str, entry: SdkSessionReport) -> None:
        """Write the session in the caller's transaction: all of it, or (on error) nothing."""
        advanced = await is_advanced(self.source, self.layout, session_id)
        created, updated = await self.session_times(session_id)
        now = datetime.now(timezone.utc)
        await dst.execute(
            tables.sessions.insert().values(
                session_id=session_id, created_at=created or now, updated_at=updated or now
            )
        )
        origin: dict[str, Any] = {
            "store": "AdvancedSQLiteSession" if advanced else "SQLiteSession/SQLAlchemySession",
            "sessions_table": self.layout.sessions.name,
            "messages_table": self.layout.messages.name,
        }
        if advanced:
            entry.branch = self.layout.branch
            origin.update(await branch_info(self.source, self.layout, session_id))
        seq = turn = total = 0
        async for page in row_pages(
            self.source, self.layout, session_id, advanced, self.batch_size
        ):
            rows = []
            for row in page:
                encoded = _decode_row(row[-2])
                if encoded is None:
                    entry.skipped_rows += 1
                    continue
                seq += 1
                turn += encoded.starts_turn
                total += encoded.tokens
                stamp = to_utc(row[-1]) or now
                rows.append(_item_row(session_id, seq, turn, total, encoded, stamp))
            if rows:
                await dst.execute(tables.items.insert(), rows)
            self.tally.add(len(page))
        origin["skipped_rows"] = entry.skipped_rows
        entry.items, entry.turns = seq, turn
        await dst.execute(
            update(tables.sessions)
            .where(tables.sessions.c.session_id == session_id)
            .values(
                item_count=seq,
                turn_count=turn,
                last_seq=seq,
                cumulative_tokens=total,
                metadata={METADATA_KEY: origin},
            )
        )


def _item_row(
    session_id: str,
    seq: int,
    turn: int,
    cumulative: int,
    encoded: EncodedItem,
    created_at: datetime,
) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "seq": seq,
        "turn": turn,
        "role": encoded.role,
        "item_type": encoded.item_type,
        "text": encoded.text,
        "item": encoded.item_json,
        "created_at": created_at,
        "tokens": encoded.tokens,
        "cumulative_tokens": cumulative,
    }


async def _exists(dst: AsyncConnection | None, session_id: str) -> bool:
    if dst is None:
        return False
    found = await dst.scalar(
        select(tables.sessions.c.session_id).where(tables.sessions.c.session_id == session_id)
    )
    return found is not None


async def _import_one(run: _Import, dst: AsyncEngine, session_id: str) -> SdkSessionReport:
    entry = SdkSessionReport(session_id=session_id, status="imported")
    async with dst.connect() as connection:
        await connection.execution_options(**WRITE_OPTIONS)
        async with connection.begin():
            if await _exists(connection, session_id):
                if run.on_existing == "error":
                    raise SessionExistsError(
                        f"session {session_id!r} already exists in the destination; nothing of "
                        "it was written. Re-run with --on-existing skip to leave it as it is."
                    )
                entry.status = "exists"
                return entry
            await run.write(connection, session_id, entry)
    return entry


@asynccontextmanager
async def _existing_destination(database: Database) -> AsyncIterator[AsyncEngine | None]:
    """For a dry run: a read-only engine on the destination if it already has our tables,
    else ``None`` (nothing is created)."""
    url = database_url(database)
    path = sqlite_path(url) if is_sqlite(url) else None
    if not isinstance(database, HistoryStore) and is_sqlite(url) and not (path and path.exists()):
        yield None
        return
    async with reading(database, schema=False) as engine:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        yield engine if tables.sessions.name in names else None


async def _source_rows(
    connection: AsyncConnection, layout: SdkLayout, session_ids: Sequence[str] | None
) -> int:
    """How many message rows the import reads: the total its progress counts up to."""
    messages = layout.messages
    statement = select(func.count()).select_from(messages)
    if session_ids is not None:
        statement = statement.where(messages.c.session_id.in_(list(session_ids)))
    return int(await connection.scalar(statement) or 0)


async def migrate_from_sdk(
    source: str | os.PathLike[str] | URL,
    *,
    to: HistoryStore | str | os.PathLike[str] | URL | None = None,
    sessions_table: str = "agent_sessions",
    messages_table: str = "agent_messages",
    branch: str = "main",
    order: SdkOrder = "auto",
    session_ids: Sequence[str] | None = None,
    dry_run: bool = False,
    on_existing: OnExisting = "skip",
    migrate: MigrateMode | None = None,
    batch_size: int = 1000,
    progress: Progress | None = None,
) -> SdkImportReport:
    """Import the SDK session tables at ``source`` into history_store's schema at ``to``.

    Args:
        source: URL, or path of an SQLite file, holding the SDK's tables (opened read-only).
        to: destination: an open :class:`HistoryStore`, a URL or an SQLite path; default
            ``source`` itself (adopt in place: our ``hs_`` tables are created beside the
            SDK's, which are not changed).
        sessions_table, messages_table: the SDK session's table names.
        branch: for ``AdvancedSQLiteSession`` data, the branch whose items are imported (a
            new ``AdvancedSQLiteSession`` instance reads ``main``); every branch's size and
            the per-turn usage are recorded in ``hs_sessions.metadata["sdk_import"]``.
        order: the SDK's read order: ``id`` (``SQLiteSession``) or ``created_at`` then ``id``
            (``SQLAlchemySession``); ``auto`` picks ``id`` on SQLite, ``created_at`` elsewhere.
        session_ids: import only these sessions (default: every session found).
        dry_run: count what would be imported; write nothing, create nothing.
        on_existing: a session already in our schema is left as it is and reported as
            ``exists`` (``skip``: re-running never duplicates), or raises
            :class:`SessionExistsError` (``error``).
        migrate: ``auto`` upgrades the destination schema, ``check`` requires it at head
            (default: ``auto`` for SQLite, ``check`` for PostgreSQL, as :class:`HistoryStore`).
        batch_size: rows read and written per round; memory use is flat in history size.
        progress: called as ``progress(done, total)`` after each batch: SDK message rows read
            so far, and in all for the sessions imported.

    Each session is written in one transaction: after an interruption it is either complete
    or absent, so a re-run picks up exactly the sessions still missing.
    """
    if batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be >= 1, not {batch_size}")
    if order not in ("auto", "id", "created_at"):
        raise InvalidArgumentError(f"order must be 'auto', 'id' or 'created_at', not {order!r}")
    src_url = source_url(source)
    destination: Database = (
        to if isinstance(to, HistoryStore) else source_url(to) if to is not None else src_url
    )
    report = SdkImportReport(
        source=redact(src_url), destination=redact(database_url(destination)), dry_run=dry_run
    )
    async with AsyncExitStack() as stack:
        src = await stack.enter_async_context(reading(src_url, schema=False))
        # The source's layout is checked before anything is created at the destination.
        async with src.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        resolved = order if order != "auto" else ("id" if is_sqlite(src_url) else "created_at")
        layout = make_layout(
            names,
            sessions_table=sessions_table,
            messages_table=messages_table,
            order=resolved,
            branch=branch,
            where=redact(src_url),
        )
        # The destination is opened (and migrated) before the long read below: on SQLite
        # that switches the file to WAL, so a reader never blocks the writer on one file.
        if dry_run:
            dst = await stack.enter_async_context(_existing_destination(destination))
        else:
            store = await stack.enter_async_context(writing(destination, migrate=migrate))
            dst = await store.engine()
        connection = await stack.enter_async_context(src.connect())
        total = await _source_rows(connection, layout, session_ids) if not dry_run else None
        run = _Import(layout, connection, sessions_table in names, batch_size, on_existing,
                      Tally(None if dry_run else progress, total))  # fmt: skip
        ids: AsyncIterator[str] | list[str] = (
            list(session_ids)
            if session_ids is not None
            else sdk_session_ids(connection, layout, run.source_has_sessions)
        )
        await _run_all(run, ids, dst, report)
    return report


async def _run_all(
    run: _Import,
    ids: AsyncIterator[str] | list[str],
    dst: AsyncEngine | None,
    report: SdkImportReport,
) -> None:
    async def each() -> AsyncIterator[str]:
        if isinstance(ids, list):
            for session_id in ids:
                yield session_id
        else:
            async for session_id in ids:
                yield session_id

    async for session_id in each():
        try:
            validate_session_id(session_id)
        except InvalidSessionIdError as exc:
            report.sessions.append(
                SdkSessionReport(session_id=str(session_id), status="invalid_id", reason=str(exc))
            )
            continue
        if report.dry_run:
            entry = SdkSessionReport(session_id=session_id, status="would_import")
            if dst is not None:
                async with dst.connect() as connection:
                    if await _exists(connection, session_id):
                        entry.status = "exists"
            if entry.status == "would_import":
                await run.count_only(session_id, entry)
            report.sessions.append(entry)
            continue
        assert dst is not None
        report.sessions.append(await _import_one(run, dst, session_id))
