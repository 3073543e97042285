"""Export sessions to versioned JSONL and import them back: ``history-store export/import``.

The format (documented in ``docs/cli.md``), one JSON document per line::

    {"format": "history_store.export", "version": 1}
    {"session": {"session_id": ..., "created_at": ..., "updated_at": ..., "metadata": ...,
                 "items": N, "turns": ..., "last_seq": ...,
                 "turn_records": [...], "summaries": [...]}}      (both optional)
    {"seq": 1, "turn": 1, "created_at": ..., "item": {...}}      (N item lines)
    {"session": ...}
    ...

An item whose stored JSON is corrupt is exported as ``"item_raw": "<stored text>"`` so nothing
is lost. Import is idempotent (rows are keyed on session id + seq; rows already present are
kept as they are), refuses to splice a stored session that is not the start of the file's
(``_import_write``), reads lines with a length cap (``_import_parse``), and is
all-or-nothing per session (a session is written only after its every line has been read
and checked, and never split across transactions).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncResult

from .. import tables
from .._items import dump_item, load_item
from .._time import as_utc
from ..errors import ImportFormatError, InvalidArgumentError, SessionNotFoundError
from ._export_records import session_records
from ._import_parse import (
    DEFAULT_MAX_LINE_LENGTH,
    EXPORT_FORMAT,
    EXPORT_VERSION,
    PendingSession,
    documents,
    fail,
    parse_header,
    parse_item,
    parse_session,
)
from ._import_write import Importer, OnConflict
from ._open import Database, reading, writing
from ._private_file import private_output
from ._progress import Progress

__all__ = ["EXPORT_FORMAT", "EXPORT_VERSION", "TransferSummary", "export", "import_"]


_items = tables.items
_sessions = tables.sessions
_EXPORT_PARTITION = 1000


@dataclass(frozen=True)
class TransferSummary:
    """How many sessions and items an export wrote, or an import wrote and actually inserted
    (items already stored are not counted); ``skipped``: conflicting sessions an import left
    alone (``on_conflict="skip"``)."""

    sessions: int
    items: int
    skipped: int = 0


def _line(document: Any) -> str:
    # The stored items' own encoding: readable, and escaped only where a lone surrogate
    # cannot be written as UTF-8.
    return dump_item(document) + "\n"


def _iso(value: datetime) -> str:
    return as_utc(value).isoformat()


async def _selected_sessions(
    connection: AsyncConnection, session_ids: Sequence[str] | None
) -> list[sa.Row[Any]]:
    statement = sa.select(_sessions).order_by(_sessions.c.session_id)
    if session_ids is not None:
        statement = statement.where(_sessions.c.session_id.in_(list(session_ids)))
    rows = list((await connection.execute(statement)).all())
    missing = sorted(set(session_ids or ()) - {row.session_id for row in rows})
    if missing:
        raise SessionNotFoundError(
            f"no session {', '.join(map(repr, missing))} in this database; nothing was "
            "exported. List sessions with: history-store sessions"
        )
    return rows


class _ItemCursor:
    """Every exported item in (session_id, seq) order, fetched in partitions, with one row of
    look-ahead so each session takes exactly its own rows.

    One ordered query instead of one per session: the sessions come in the same order, so
    their items follow each other in the stream.
    """

    def __init__(self, result: AsyncResult[Any]) -> None:
        self._partitions = result.partitions(_EXPORT_PARTITION).__aiter__()
        self._buffer: deque[sa.Row[Any]] = deque()
        self._exhausted = False

    async def take(self, session_id: str) -> sa.Row[Any] | None:
        """The next item row if it belongs to ``session_id``, else ``None``."""
        while not self._buffer and not self._exhausted:
            try:
                self._buffer.extend(await self._partitions.__anext__())
            except StopAsyncIteration:
                self._exhausted = True
        if self._buffer and self._buffer[0].session_id == session_id:
            return self._buffer.popleft()
        return None


async def _export_session(
    connection: AsyncConnection,
    session: sa.Row[Any],
    count: int,
    cursor: _ItemCursor,
    out: TextIO,
) -> None:
    header = {
        "session_id": session.session_id,
        "created_at": _iso(session.created_at),
        "updated_at": _iso(session.updated_at),
        "metadata": session.metadata,
        "items": count,
        "turns": session.turn_count,
        "last_seq": session.last_seq,
        **await session_records(connection, session.session_id),
    }
    out.write(_line({"session": header}))
    while (row := await cursor.take(session.session_id)) is not None:
        line: dict[str, Any] = {
            "seq": row.seq,
            "turn": row.turn,
            "created_at": _iso(row.created_at),
        }
        try:
            line["item"] = load_item(row.item)
        except ValueError:
            line["item_raw"] = row.item
        out.write(_line(line))


async def _item_counts(
    connection: AsyncConnection, session_ids: Sequence[str] | None
) -> dict[str, int]:
    statement = sa.select(_items.c.session_id, sa.func.count()).group_by(_items.c.session_id)
    if session_ids is not None:
        statement = statement.where(_items.c.session_id.in_(list(session_ids)))
    return {session_id: int(count) for session_id, count in await connection.execute(statement)}


async def _item_cursor(
    connection: AsyncConnection, session_ids: Sequence[str] | None
) -> _ItemCursor:
    statement = sa.select(
        _items.c.session_id, _items.c.seq, _items.c.turn, _items.c.created_at, _items.c.item
    ).order_by(_items.c.session_id, _items.c.seq)
    if session_ids is not None:
        statement = statement.where(_items.c.session_id.in_(list(session_ids)))
    return _ItemCursor(await connection.stream(statement))


async def export(
    out: TextIO | str | os.PathLike[str],
    url: Database = None,
    *,
    session_ids: Sequence[str] | None = None,
    progress: Progress | None = None,
    force: bool = False,
) -> TransferSummary:
    """Write the sessions (all, or ``session_ids``) to ``out`` as export JSONL.

    ``out`` is an open text stream, or a path. A path is written the safe way
    (``_private_file``): a new owner-only (0600) file beside it, never opened through a
    link, renamed into place only once the export is complete. An existing file at that
    path raises :class:`OutputExistsError` and is left alone, unless ``force=True``.

    The database is opened read-only and read in one transaction, so the file is a consistent
    snapshot. Raises :class:`SessionNotFoundError` (before writing anything) when a named
    session does not exist.
    """
    if isinstance(out, (str, os.PathLike)):
        with private_output(out, replace=force) as stream:
            return await _export_stream(stream, url, session_ids, progress)
    return await _export_stream(out, url, session_ids, progress)


async def _export_stream(
    out: TextIO,
    url: Database,
    session_ids: Sequence[str] | None,
    progress: Progress | None,
) -> TransferSummary:
    async with reading(url) as engine, engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execution_options(isolation_level="REPEATABLE READ")
        sessions = await _selected_sessions(connection, session_ids)
        counts = await _item_counts(connection, session_ids)
        total = sum(counts.values())
        cursor = await _item_cursor(connection, session_ids)
        out.write(_line({"format": EXPORT_FORMAT, "version": EXPORT_VERSION}))
        done = 0
        for session in sessions:
            count = counts.get(session.session_id, 0)
            await _export_session(connection, session, count, cursor, out)
            done += count
            if progress is not None:
                progress(done, total)
        await connection.rollback()
    out.flush()
    return TransferSummary(sessions=len(sessions), items=done)


def _count_lines(path: str | os.PathLike[str]) -> int:
    # In blocks: iterating lines would hold a whole newline-free file in memory.
    with open(path, "rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))


async def import_(
    source: str | os.PathLike[str] | TextIO,
    url: Database = None,
    *,
    progress: Progress | None = None,
    on_conflict: OnConflict = "error",
    max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
) -> TransferSummary:
    """Import an export file (a path, or an open text stream) into the database at ``url``.

    Creates the database (and schema) when needed. Idempotent: importing a file twice leaves
    the same rows. All-or-nothing per session: a bad line raises :class:`ImportFormatError`
    naming it, and leaves the sessions before it imported and its own session untouched.
    Counters (item_count, turn_count, last_seq) are recomputed, so sessions keep working.

    A session already stored with a history that is not the start of the file's is a
    conflict (``_import_write``): ``on_conflict="error"`` raises
    :class:`ImportConflictError` and leaves it untouched, ``"skip"`` leaves it and counts it
    in ``skipped``, ``"replace"`` replaces it with the file's. A line longer than
    ``max_line_length`` characters (default 64 Mi) is refused with
    :class:`ImportFormatError` naming it, so memory stays bounded whatever the input.
    """
    if max_line_length < 1:
        raise InvalidArgumentError(f"max_line_length must be >= 1, not {max_line_length}")
    options = _ImportOptions(progress, on_conflict, max_line_length)
    if not isinstance(source, (str, os.PathLike)):
        return await _import_lines(source, url, options, None)
    try:
        total: int | None = max(_count_lines(source) - 1, 0)
        handle = open(source, encoding="utf-8")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise InvalidArgumentError(
            f"cannot read the export file {os.fspath(source)!r}: {exc.strerror}; check the path"
        ) from exc
    with handle:
        return await _import_lines(handle, url, options, total)


@dataclass(frozen=True)
class _ImportOptions:
    progress: Progress | None
    on_conflict: OnConflict
    max_line_length: int


async def _read_sessions(
    parsed: Iterator[tuple[int, Any]],
    importer: Importer,
    progress: Progress | None,
    total: int | None,
) -> None:
    reader = _SessionReader()
    try:
        for done, (line, document) in enumerate(parsed, start=1):
            complete = reader.take(line, document)
            if complete is not None:
                await importer.add(complete)
            if progress is not None:
                progress(done, total)
    except ImportFormatError:
        # A line that could not be read at all (too long, not JSON) after a session that has
        # every item it declares starts the next session: the complete one is imported.
        if reader.unreadable_line and reader.pending_is_complete():
            assert reader.pending is not None
            await importer.add(reader.pending)
        raise
    if reader.pending is not None:
        await importer.add(reader.pending)


class _SessionReader:
    """Groups parsed lines into sessions; each session line hands back the one before it."""

    def __init__(self) -> None:
        self.pending: PendingSession | None = None
        self.first_lines: dict[str, int] = {}
        self.unreadable_line = True  # until a line parses, an error is the reader's

    def pending_is_complete(self) -> bool:
        return self.pending is not None and len(self.pending.rows) == self.pending.declared_items

    def take(self, line: int, document: Any) -> PendingSession | None:
        self.unreadable_line = False
        try:
            return self._take(line, document)
        finally:
            self.unreadable_line = True

    def _take(self, line: int, document: Any) -> PendingSession | None:
        if isinstance(document, dict) and "session" in document:
            session = parse_session(document["session"], line)
            first = self.first_lines.setdefault(session.session_id, line)
            if first != line:
                problem = f"session {session.session_id!r} is listed twice (first on line {first})"
                raise fail(line, problem)
            complete, self.pending = self.pending, session
            return complete
        if isinstance(document, dict) and ("item" in document or "item_raw" in document):
            if self.pending is None:
                raise fail(line, "an item comes before any session line")
            self.pending.rows.append(parse_item(document, self.pending, line))
            return None
        raise fail(line, "expected a 'session' line or an item line")


async def _import_lines(
    stream: TextIO, url: Database, options: _ImportOptions, total: int | None
) -> TransferSummary:
    parsed = iter(documents(stream, options.max_line_length))
    first = next(parsed, None)
    if first is None:
        raise ImportFormatError("the file is empty; expected a history_store export")
    parse_header(*first)
    async with writing(url) as store:
        importer = Importer(store, options.on_conflict)
        try:
            await _read_sessions(parsed, importer, options.progress, total)
        except ImportFormatError:
            # The sessions completed before the bad line are imported, as the error says.
            await importer.flush()
            raise
        await importer.flush()
    counts = importer.counts
    return TransferSummary(sessions=counts.sessions, items=counts.items, skipped=counts.skipped)
