"""Writing checked import sessions: batched transactions, conflicts found before any write.

A session of the file is written only if what the database holds for it is a prefix of (or
equal to) the file's history: then the file's later items are added and the import is
idempotent. Anything else (the session was cleared and restarted since the backup, or
continued differently) is a conflict: splicing the two would return one conversation
followed by the other's tail. A conflict raises :class:`ImportConflictError` and leaves the
session untouched, unless the caller chose to ``skip`` such sessions or ``replace`` them with
the file's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import tables
from .._items import load_item
from .._time import as_utc
from ..errors import ImportConflictError, InvalidArgumentError
from ..store import HistoryStore
from ._export_records import write_records
from ._import_parse import PendingSession, check_complete
from ._open import chunks, in_transaction

OnConflict = Literal["error", "skip", "replace"]
ON_CONFLICT_CHOICES: tuple[OnConflict, ...] = ("error", "skip", "replace")

_items = tables.items
_sessions = tables.sessions
_INSERT_CHUNK = 500
# An import transaction holds at most about this many items or sessions.
_BATCH_ITEMS = 2000
_BATCH_SESSIONS = 200


@dataclass
class ImportCounts:
    """Sessions written, items actually inserted, sessions left alone as conflicts."""

    sessions: int = 0
    items: int = 0
    skipped: int = 0


def _same_item(stored: str, imported: str) -> bool:
    if stored == imported:
        return True
    try:
        return bool(load_item(stored) == load_item(imported))
    except ValueError:
        return False


async def _stored_is_prefix(connection: AsyncConnection, session: PendingSession) -> bool:
    """Whether the session's stored rows are the file's first rows (same seqs, same items)."""
    stored = (
        await connection.execute(
            sa.select(_items.c.seq, _items.c.item)
            .where(_items.c.session_id == session.session_id)
            .order_by(_items.c.seq)
        )
    ).all()
    if len(stored) > len(session.rows):
        return False
    ordered = sorted(session.rows, key=lambda row: row["seq"])
    return all(
        seq == row["seq"] and _same_item(item, row["item"])
        for (seq, item), row in zip(stored, ordered, strict=False)
    )


def _upsert(dialect: str, session: PendingSession) -> Any:
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_sessions)
    statement = insert.values(
        session_id=session.session_id,
        created_at=session.created_at,
        updated_at=session.updated_at,
        metadata=sa.null() if session.metadata is None else session.metadata,
        item_count=0,
        turn_count=0,
        last_seq=0,
    )
    # A no-op update still takes the row lock, so live writers of this session wait for us,
    # and RETURNING hands back the row as it was.
    return statement.on_conflict_do_update(
        index_elements=[_sessions.c.session_id],
        set_={"updated_at": _sessions.c.updated_at},
    ).returning(
        _sessions.c.created_at,
        _sessions.c.updated_at,
        _sessions.c.last_seq,
        _sessions.c.turn_count,
        _sessions.c.item_count,
        _sessions.c.cumulative_tokens,
    )


async def _item_totals(connection: AsyncConnection, session_id: str) -> Any:
    statement = sa.select(
        sa.func.count(), sa.func.max(_items.c.seq), sa.func.max(_items.c.turn)
    ).where(_items.c.session_id == session_id)
    return (await connection.execute(statement)).one()


async def _write_session(
    connection: AsyncConnection, session: PendingSession, replace: bool
) -> int:
    """Insert the file's rows the session lacks (all of them with ``replace``, after removing
    the stored ones); the counters recomputed. Returns the rows inserted."""
    dialect = connection.dialect.name
    existing = (await connection.execute(_upsert(dialect, session))).one()
    where = _sessions.c.session_id == session.session_id
    if replace:
        await connection.execute(sa.delete(_items).where(_items.c.session_id == session.session_id))
    before, _, _ = await _item_totals(connection, session.session_id)
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_items)
    statement = insert.on_conflict_do_nothing(index_elements=[_items.c.session_id, _items.c.seq])
    # The running token total goes on from the stored one (which never goes back), so it
    # keeps growing with seq past every row there is or was.
    total = int(existing.cumulative_tokens or 0)
    for row in sorted(session.rows, key=lambda row: row["seq"]):
        total += row["tokens"]
        row["cumulative_tokens"] = total
    for rows in chunks(session.rows, _INSERT_CHUNK):
        await connection.execute(statement, rows)
    await write_records(
        connection, session.session_id, session.turn_records, session.summaries, replace=replace
    )
    count, max_seq, max_turn = await _item_totals(connection, session.session_id)
    kept = (
        (session.last_seq, session.turns, session.created_at, session.updated_at)
        if replace
        else (
            max(existing.last_seq, session.last_seq),
            max(existing.turn_count, session.turns),
            min(as_utc(existing.created_at), session.created_at),
            max(as_utc(existing.updated_at), session.updated_at),
        )
    )
    values: dict[str, Any] = {
        "item_count": count,
        "cumulative_tokens": total,
        "last_seq": max(kept[0], max_seq or 0),
        "turn_count": max(kept[1], max_turn or 0),
        "created_at": kept[2],
        "updated_at": kept[3],
    }
    if session.metadata is not None or replace:
        values["metadata"] = sa.null() if session.metadata is None else session.metadata
    await connection.execute(sa.update(_sessions).where(where).values(values))
    return int(count) - int(before)


def conflict_error(session: PendingSession) -> ImportConflictError:
    return ImportConflictError(
        f"line {session.line}: session {session.session_id!r} already holds a history that "
        "is not the start of the file's (was it cleared and restarted since the export?); it "
        "was left as it is, and nothing after it was imported (sessions before it were). "
        "Import again with --on-conflict skip (on_conflict='skip') to leave such sessions "
        "alone, or --on-conflict replace to replace them with the file's."
    )


class Importer:
    """Writes checked sessions in batches, one transaction per batch: each session is stored
    whole or not at all, and small sessions do not each pay for a commit."""

    def __init__(self, store: HistoryStore, on_conflict: OnConflict) -> None:
        if on_conflict not in ON_CONFLICT_CHOICES:
            raise InvalidArgumentError(
                f"on_conflict must be one of {', '.join(ON_CONFLICT_CHOICES)}, not {on_conflict!r}"
            )
        self.store = store
        self.on_conflict = on_conflict
        self.batch: list[PendingSession] = []
        self.counts = ImportCounts()

    async def add(self, session: PendingSession) -> None:
        check_complete(session)
        self.batch.append(session)
        pending_items = sum(len(pending.rows) for pending in self.batch)
        if pending_items >= _BATCH_ITEMS or len(self.batch) >= _BATCH_SESSIONS:
            await self.flush()

    async def flush(self) -> None:
        """Write the batch. With ``on_conflict="error"`` the sessions before a conflicting
        one are committed, then :class:`ImportConflictError` is raised."""
        batch, self.batch = self.batch, []
        if not batch:
            return

        async def write(connection: AsyncConnection) -> tuple[ImportCounts, PendingSession | None]:
            counts = ImportCounts()
            for session in batch:
                conflict = not await _stored_is_prefix(connection, session)
                if conflict and self.on_conflict == "error":
                    return counts, session
                if conflict and self.on_conflict == "skip":
                    counts.skipped += 1
                    continue
                counts.items += await _write_session(connection, session, replace=conflict)
                counts.sessions += 1
            return counts, None

        counts, conflicting = await in_transaction(self.store, "import", write)
        self.counts.sessions += counts.sessions
        self.counts.items += counts.items
        self.counts.skipped += counts.skipped
        if conflicting is not None:
            raise conflict_error(conflicting)
