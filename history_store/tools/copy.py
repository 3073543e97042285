"""Copy every session from one history_store database to another (SQLite <-> PostgreSQL).

The copy is streamed, resumable and verified:

* items move per session in batches keyed by ``(session_id, seq)`` (keyset pages), all of
  one session in one destination transaction with its counters written last, so memory
  stays flat whatever the history's size and nobody sees a session half copied;
* a re-run skips sessions the destination already holds identically, copies again a
  session an interruption rolled back, and extends a destination session that is a prefix
  of the source's (the source grew since) after its last ``seq``;
* each session is verified before it commits: the destination's item count and checksum
  must equal the source's, else :class:`CopyVerificationError` and the session is rolled
  back.

The checksum of a session is SHA-256 over ``"<seq>\\t<item JSON text>\\n"`` for each item in
``seq`` order (UTF-8): equal checksums mean the same items, byte for byte, at the same seqs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Column, func, null, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .. import tables
from .._engine import in_write_transaction, redact
from ..errors import (
    ConfigurationError,
    CopyConflictError,
    CopyVerificationError,
    InvalidArgumentError,
)
from ..schema import MigrateMode
from ._export_records import copy_records
from ._open import Database, database_url, keyset_pages, reading, writing
from ._progress import Progress, Tally

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = [
    "CopyReport",
    "SessionDigest",
    "copy_database",
    "session_digest",
]

_items = tables.items
_sessions = tables.sessions


@dataclass(frozen=True)
class SessionDigest:
    """Item count, highest seq and checksum of one session (see the module docstring)."""

    count: int
    last_seq: int
    sha256: str


@dataclass
class CopyReport:
    """The outcome of :func:`copy_database`; every listed session ended verified."""

    source: str
    destination: str
    sessions: int = 0
    copied: int = 0
    resumed: int = 0
    unchanged: int = 0
    items_copied: int = 0
    items_total: int = 0


def _copied_columns(table: Any) -> list[Column[Any]]:
    # Generated columns (a later revision may add some) are computed by the destination.
    return [col for col in table.columns if col.computed is None]


def _portable(value: Any) -> Any:
    # SQLite hands back naive datetimes that were written as UTC; PostgreSQL needs to know.
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
    return value


class _Digest:
    """A running session checksum."""

    def __init__(self) -> None:
        self.hash: _Hash = hashlib.sha256()
        self.count = 0
        self.last_seq = 0

    def add(self, seq: int, item_json: str) -> None:
        self.hash.update(f"{seq}\t{item_json}\n".encode("utf-8", "surrogatepass"))
        self.count += 1
        self.last_seq = seq

    def result(self) -> SessionDigest:
        return SessionDigest(self.count, self.last_seq, self.hash.hexdigest())


async def _digest_range(
    connection: AsyncConnection,
    session_id: str,
    digest: _Digest,
    *,
    after: int = 0,
    upto: int | None = None,
    batch_size: int = 1000,
) -> None:
    """Feed the session's items with ``after < seq <= upto`` into ``digest``, page by page."""
    last = after
    while True:
        statement = (
            select(_items.c.seq, _items.c.item)
            .where(_items.c.session_id == session_id, _items.c.seq > last)
            .order_by(_items.c.seq)
            .limit(batch_size)
        )
        if upto is not None:
            statement = statement.where(_items.c.seq <= upto)
        page = (await connection.execute(statement)).all()
        for seq, item_json in page:
            digest.add(seq, item_json)
        if len(page) < batch_size:
            return
        last = page[-1][0]


async def session_digest(
    url: Database, session_id: str, *, batch_size: int = 1000
) -> SessionDigest:
    """Count, last seq and checksum of ``session_id`` at ``url`` (read-only, streamed)."""
    async with reading(url, schema=False) as engine, engine.connect() as connection:
        digest = _Digest()
        await _digest_range(connection, session_id, digest, batch_size=batch_size)
        return digest.result()


@dataclass
class _Copier:
    src: AsyncConnection
    dst: AsyncEngine
    batch_size: int
    tally: Tally

    async def _session_row(self, session_id: str) -> dict[str, Any]:
        columns = _copied_columns(_sessions)
        row = (
            await self.src.execute(select(*columns).where(_sessions.c.session_id == session_id))
        ).one()
        values = {}
        for col, value in zip(columns, row, strict=True):
            # None in a JSON column must stay SQL NULL, not become the JSON text 'null'.
            values[col.name] = null() if value is None and isinstance(col.type, JSON) else value
        return {name: _portable(value) for name, value in values.items()}

    async def _copy_tail(
        self, dst: AsyncConnection, session_id: str, after: int, src_digest: _Digest
    ) -> int:
        """Insert the source's items after seq ``after`` on ``dst``, a page at a time."""
        columns = _copied_columns(_items)
        seq_at = columns.index(_items.c.seq)
        item_at = columns.index(_items.c.item)
        copied, last = 0, after
        while True:
            page = (
                await self.src.execute(
                    select(*columns)
                    .where(_items.c.session_id == session_id, _items.c.seq > last)
                    .order_by(_items.c.seq)
                    .limit(self.batch_size)
                )
            ).all()
            if page:
                rows = [
                    {col.name: _portable(value) for col, value in zip(columns, row, strict=True)}
                    for row in page
                ]
                await dst.execute(_items.insert(), rows)
                for row in page:
                    src_digest.add(row[seq_at], row[item_at])
                copied += len(page)
                last = page[-1][seq_at]
                self.tally.add(len(page))
            if len(page) < self.batch_size:
                return copied

    async def _source_prefix(self, session_id: str, dst_digest: _Digest) -> _Digest:
        """The source's checksum over the items the destination already has; they must be
        the same items, else the destination's session is not a partial copy of this one."""
        src_digest = _Digest()
        await _digest_range(
            self.src, session_id, src_digest, upto=dst_digest.last_seq, batch_size=self.batch_size
        )
        if src_digest.result() != dst_digest.result():
            raise CopyConflictError(
                f"session {session_id!r} already exists in the destination with other items "
                f"({dst_digest.count} items that are not the source's first items); nothing "
                "of it was changed. Delete it from the destination, or copy into an empty "
                "database."
            )
        return src_digest

    async def copy_session(self, session_id: str, report: CopyReport) -> None:
        """Copy (or extend, or confirm) one session in one destination transaction, then
        verify it there before committing.

        Its rows go in pages inside that transaction and its counters last, so memory stays
        flat and no reader or writer of the destination ever sees the session half copied:
        an interrupted copy rolls the session back, and the next run copies it whole.
        """
        values = await self._session_row(session_id)

        async def copy(dst: AsyncConnection) -> tuple[int, _Digest, _Digest]:
            exists = await dst.scalar(
                select(func.count()).where(_sessions.c.session_id == session_id)
            )
            dst_digest = _Digest()
            await _digest_range(dst, session_id, dst_digest, batch_size=self.batch_size)
            src_digest = await self._source_prefix(session_id, dst_digest)
            if not exists:
                counters = {"item_count": 0, "turn_count": 0, "last_seq": 0}
                await dst.execute(_sessions.insert().values({**values, **counters}))
            copied = await self._copy_tail(dst, session_id, dst_digest.last_seq, src_digest)
            if copied:
                # Read back what was written, continuing the destination's running checksum.
                await _digest_range(
                    dst, session_id, dst_digest, after=dst_digest.last_seq,
                    batch_size=self.batch_size,
                )  # fmt: skip
            if src_digest.result() != dst_digest.result():
                raise CopyVerificationError(
                    f"session {session_id!r} differs after copying: source "
                    f"{src_digest.result()}, destination {dst_digest.result()}. Was either "
                    "database written during the copy? Re-run the copy once writers have "
                    "stopped; nothing of this session was committed."
                )
            await dst.execute(
                update(_sessions).where(_sessions.c.session_id == session_id).values(values)
            )
            await copy_records(self.src, dst, session_id)
            return copied, src_digest, dst_digest

        copied, src_digest, dst_digest = await in_write_transaction(self.dst, copy)
        report.sessions += 1
        report.items_total += src_digest.count
        report.items_copied += copied
        if copied == 0:
            report.unchanged += 1
        elif dst_digest.count > copied:
            report.resumed += 1
        else:
            report.copied += 1


async def copy_database(
    source: Database,
    destination: Database,
    *,
    batch_size: int = 1000,
    migrate: MigrateMode | None = None,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy every session and item from ``source`` to ``destination``, then verify each.

    Args:
        source: history_store database to read (read-only; its schema must be at head).
        destination: database to write; ``migrate="auto"`` (the default for SQLite) upgrades
            its schema first, ``"check"`` (the default for PostgreSQL) requires it at head and
            raises :class:`SchemaOutOfDateError` naming the command to run. An open
            :class:`HistoryStore` keeps its own ``migrate`` mode.
        batch_size: items per read and per destination transaction.
        progress: called as ``progress(done, total)`` with the items copied so far and the
            source's item count, after each batch.

    Re-running after an interruption continues where the copy stopped. Every item keeps its
    ``seq``, turn, JSON text and timestamps; every session its counters and metadata. A
    destination session that is not a prefix of the source's raises
    :class:`CopyConflictError`; copy into an empty database, or one this copy filled.
    """
    if batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be >= 1, not {batch_size}")
    src_url, dst_url = database_url(source), database_url(destination)
    if src_url == dst_url:
        raise ConfigurationError(
            f"source and destination are the same database ({redact(src_url)}); "
            "pass two different URLs"
        )
    report = CopyReport(source=redact(src_url), destination=redact(dst_url))
    async with (
        reading(source) as src,
        writing(destination, migrate=migrate) as dst_store,
        src.connect() as connection,
    ):
        total = await connection.scalar(select(func.coalesce(func.sum(_sessions.c.item_count), 0)))
        tally = Tally(progress, int(total or 0))
        copier = _Copier(connection, await dst_store.engine(), batch_size, tally)
        async for session_id in keyset_pages(connection, _sessions.c.session_id):
            await copier.copy_session(session_id, report)
    return report
