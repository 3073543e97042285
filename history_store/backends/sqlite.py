"""The session operations on an SQLite file through the stdlib driver: one hop each.

SQLAlchemy's async layer reaches SQLite through aiosqlite, one thread hop per DBAPI call
(cursor, execute, fetch, close, BEGIN, COMMIT, the pool's reset): a 4-item ``add_items``
cost about ten hops and ran slower than the SDK's own ``SQLiteSession``. The four session
operations are the hot path of every turn, so on an SQLite file they run here instead:

* a write is one transaction (``BEGIN IMMEDIATE``, the statements, ``COMMIT``; tens of
  microseconds with ``synchronous=NORMAL``), run on the calling thread when the write lock
  is free at once: handing it to a thread costs more than the write. That connection has no
  busy timeout, so it never waits on a lock; the writer thread checkpoints every
  :data:`CHECKPOINT_EVERY_WRITES` writes, and the caller's thread itself (a PASSIVE
  checkpoint, which never waits) every :data:`CHECKPOINT_EVERY_BYTES` appended, which keeps
  the WAL bounded under a steady stream of large items. When another
  writer holds the lock, the write goes to the store's single writer thread, which waits for
  the lock (busy timeout, then a bounded retry); writers of one process queue there instead of
  sleeping in SQLite's busy handler.
* a read of up to :data:`INLINE_READ_ROWS` rows (a tail read, or the whole of a short
  session) runs on the calling thread too: in WAL mode a reader never waits for a writer,
  and reading a few pages costs less than a thread hop. If SQLite ever answers busy, the
  read moves to a worker thread, as longer reads do.
* new rows' text is indexed for search in bulk, every few hundred rows (``sqlite_fts``).

Everything else (schema, migrations, the tools) uses SQLAlchemy. The SQL here is the SQLite
form of the Core statements in ``core.py``; both write the same values, and the tests run
every session test on both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from .. import tables
from .._engine import (
    busy_error,
    configure_sqlite_connection,
    durability_of,
    finish_despite_cancellation,
    lock_retry_delays,
    redact,
    sqlite_busy_timeout,
    sqlite_file_error,
)
from .._time import as_utc
from ..errors import StoreClosedError
from . import sqlite_fts as search_index
from .base import (
    Appended,
    EncodedItem,
    RecentRows,
    Rows,
    Summary,
    TurnRecord,
    first_of_turn,
    merged_metadata,
    metadata_json,
    metadata_object,
    numbered,
    recent_rows,
    row_values,
)

_T = TypeVar("_T")
logger = logging.getLogger("history_store")

INLINE_READ_ROWS = 256
"""Reads of at most this many rows run on the caller's thread."""

CHECKPOINT_EVERY_WRITES = 256
"""Writes on the callers' threads between two WAL checkpoints run by the writer thread."""

CHECKPOINT_EVERY_BYTES = 4 * 1024 * 1024
"""Item bytes appended that call for a checkpoint on the caller's thread: a few large items
grow the WAL as much as many small writes (it reached 84 MB before the first checkpoint by
count alone)."""

_BUSY: Any = object()

# The exact text SQLAlchemy's DateTime stores on SQLite, so rows look the same either way.
_DIALECT = sqlite.dialect()
_format_datetime: Callable[[datetime], str] = tables.items.c.created_at.type.dialect_impl(
    _DIALECT
).bind_processor(_DIALECT)  # type: ignore[assignment]

_parse_stamp: Callable[[str], datetime] = tables.items.c.created_at.type.dialect_impl(
    _DIALECT
).result_processor(_DIALECT, None)  # type: ignore[assignment]


def _parse_datetime(value: str | None) -> datetime | None:
    return as_utc(_parse_stamp(value)) if value is not None else None


# Constant statements; the names are those of tables.py.
_UPSERT = (
    "INSERT INTO hs_sessions (session_id, created_at, updated_at, item_count, turn_count, "
    "last_seq, cumulative_tokens) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id) "
    "DO UPDATE SET last_seq = hs_sessions.last_seq + excluded.last_seq, "
    "item_count = hs_sessions.item_count + excluded.item_count, "
    "turn_count = hs_sessions.turn_count + excluded.turn_count, "
    "cumulative_tokens = hs_sessions.cumulative_tokens + excluded.cumulative_tokens, "
    "updated_at = excluded.updated_at RETURNING last_seq, turn_count, cumulative_tokens"
)
_INSERT = (
    "INSERT INTO hs_items (session_id, seq, turn, role, item_type, text, item, created_at, "
    "tokens, cumulative_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# History rows only: those of failed or blocked turns stay stored but are not history.
# ?1 is the session id in every read.
_HISTORY = (
    "SELECT seq, item FROM hs_items WHERE session_id = ?1 AND turn NOT IN "
    "(SELECT turn FROM hs_turns WHERE session_id = ?1 AND status IN ('failed', 'blocked')) "
)
_ALL = _HISTORY + "ORDER BY seq"
_HEAD = _HISTORY + "ORDER BY seq LIMIT ?2"
_TAIL = _HISTORY + "ORDER BY seq DESC LIMIT ?2"
_TAIL_BELOW = _HISTORY + "AND seq < ?3 ORDER BY seq DESC LIMIT ?2"
# Where the window of ?2 tokens starts: the oldest row p whose running total reaches
# (total - ?2), one index lookup on (session_id, cumulative_tokens); no row when the whole
# total is within ?2 (and p's own tokens, and whether p is in a hidden turn, for
# base.recent_rows). The window is then the history rows after p (_RECENT).
_WINDOW_START = (
    "SELECT p.seq, p.cumulative_tokens, s.cumulative_tokens, p.tokens, EXISTS (SELECT 1 FROM "
    "hs_turns t WHERE t.session_id = ?1 AND t.turn = p.turn AND t.status IN ('failed', "
    "'blocked')) FROM hs_items p, hs_sessions s "
    "WHERE s.session_id = ?1 AND p.session_id = ?1 AND s.cumulative_tokens > ?2 "
    "AND p.cumulative_tokens >= s.cumulative_tokens - ?2 ORDER BY p.cumulative_tokens LIMIT 1"
)
_RECENT = (
    "SELECT seq, item, turn, tokens FROM hs_items WHERE session_id = ?1 AND seq > ?2 AND turn "
    "NOT IN (SELECT turn FROM hs_turns WHERE session_id = ?1 AND status IN ('failed', "
    "'blocked')) ORDER BY seq"
)
_LATEST_SUMMARY = (
    "SELECT first_seq, last_seq, text, tokens, model, input_tokens, output_tokens, "
    "total_tokens, created_at FROM hs_summaries WHERE session_id = ? "
    "ORDER BY last_seq DESC, id DESC LIMIT 1"
)
# Only while the newest summary still ends at ?11 (writes are serialized: no race).
_ADD_SUMMARY = (
    "INSERT INTO hs_summaries (session_id, first_seq, last_seq, text, tokens, model, "
    "input_tokens, output_tokens, total_tokens, created_at) "
    "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 WHERE coalesce((SELECT max(last_seq) "
    "FROM hs_summaries WHERE session_id = ?1), 0) = ?11"
)
_RECENT_USAGE = (
    "SELECT estimated_input_tokens, input_tokens FROM hs_turns WHERE session_id = ? "
    "AND estimated_input_tokens > 0 AND input_tokens > 0 ORDER BY turn DESC LIMIT ?"
)
_TURN_OF = "SELECT turn FROM hs_items WHERE session_id = ? AND seq = ?"
_DELETE_ONE = "DELETE FROM hs_items WHERE session_id = ? AND seq = ? RETURNING turn"
_TURN_BELOW = "SELECT turn FROM hs_items WHERE session_id = ? AND seq < ? ORDER BY seq DESC LIMIT 1"
_FORGET = "UPDATE hs_sessions SET item_count = item_count - 1, updated_at = ? WHERE session_id = ?"
# Only when the removed item started the latest turn: the count goes back to the turn before.
_FORGET_TURN = (
    "UPDATE hs_sessions SET item_count = item_count - 1, updated_at = ?, "
    "turn_count = CASE WHEN turn_count = ? THEN ? ELSE turn_count END WHERE session_id = ? "
    "RETURNING turn_count"
)
_FORGET_TURN_ROW = "DELETE FROM hs_turns WHERE session_id = ? AND turn = ?"
# A turn's row, or its new outcome; None keeps what is stored. Only for an existing session.
_RECORD_TURN = (
    "INSERT INTO hs_turns (session_id, turn, status, agent, model, requests, input_tokens, "
    "output_tokens, total_tokens, started_at, finished_at, estimated_input_tokens, "
    "window_first_seq) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13 "
    "WHERE EXISTS (SELECT 1 FROM hs_sessions WHERE session_id = ?1) "
    "ON CONFLICT (session_id, turn) DO UPDATE SET status = excluded.status, "
    "agent = coalesce(excluded.agent, hs_turns.agent), "
    "model = coalesce(excluded.model, hs_turns.model), "
    "requests = coalesce(excluded.requests, hs_turns.requests), "
    "input_tokens = coalesce(excluded.input_tokens, hs_turns.input_tokens), "
    "output_tokens = coalesce(excluded.output_tokens, hs_turns.output_tokens), "
    "total_tokens = coalesce(excluded.total_tokens, hs_turns.total_tokens), "
    "started_at = coalesce(hs_turns.started_at, excluded.started_at), "
    "finished_at = coalesce(excluded.finished_at, hs_turns.finished_at), "
    "estimated_input_tokens = coalesce(excluded.estimated_input_tokens, "
    "hs_turns.estimated_input_tokens), "
    "window_first_seq = coalesce(excluded.window_first_seq, hs_turns.window_first_seq)"
)
_CLEAR_ITEMS = "DELETE FROM hs_items WHERE session_id = ?"
_CLEAR_SESSION = "DELETE FROM hs_sessions WHERE session_id = ?"
_METADATA = "SELECT metadata FROM hs_sessions WHERE session_id = ?"
_CREATE_SESSION = (
    "INSERT INTO hs_sessions (session_id, created_at, updated_at, metadata) "
    "VALUES (?, ?, ?, ?) ON CONFLICT (session_id) DO NOTHING"
)
_SET_METADATA = "UPDATE hs_sessions SET metadata = ?, updated_at = ? WHERE session_id = ?"
assert tables.items.name == "hs_items" and tables.sessions.name == "hs_sessions"
assert tables.turns.name == "hs_turns" and tables.HIDDEN_STATUSES == ("failed", "blocked")


@contextlib.contextmanager
def _driver_errors() -> Iterator[None]:
    """Raise driver errors as SQLAlchemy's (``IntegrityError``, ...), as the Core path does."""
    try:
        yield
    except sqlite3.Error as exc:
        if isinstance(exc, sqlite3.OperationalError) and _is_lock_error(exc):
            raise
        raise DBAPIError.instance(None, None, exc, sqlite3.Error) from exc


def _is_lock_error(exc: sqlite3.OperationalError) -> bool:
    message = str(exc).lower()
    return "locked" in message or "busy" in message


class SQLiteBackend:
    """The session operations on one SQLite file (see the module docstring).

    Thread-safe and usable from any event loop: nothing here belongs to a loop. Each thread
    that reads gets its own connection; connections of threads that have ended are closed
    when the next one opens, so ``Runner.run_sync`` in short-lived threads leaves none behind.
    """

    def __init__(self, path: Path, url: URL) -> None:
        self._path = str(path)
        self._url = url
        self._durability = durability_of(url)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history_store")
        self._local = threading.local()
        self._owners: dict[sqlite3.Connection, threading.Thread] = {}
        self._lock = threading.Lock()
        self._closed = False
        # Both only steer background upkeep, so a lost update between threads is harmless.
        self._writes_since_checkpoint = 0
        self._bytes_since_checkpoint = 0
        self._rows_to_index = 0

    # -- connections -------------------------------------------------------------------------

    def _connection(self, *, inline: bool = False) -> sqlite3.Connection:
        """This thread's connection; an inline reader's never waits on a lock."""
        key = "inline" if inline else "worker"
        connection: sqlite3.Connection | None = getattr(self._local, key, None)
        if connection is not None:
            return connection
        with self._lock:
            if self._closed:
                raise StoreClosedError(
                    f"the store at {redact(self._url)} is closed; open a new one"
                )
            self._close_connections_of_ended_threads()
        connection = sqlite3.connect(
            self._path,
            timeout=0 if inline else sqlite_busy_timeout(),
            isolation_level=None,
            check_same_thread=False,
        )
        configure_sqlite_connection(connection, durability=self._durability)
        if inline:
            connection.execute("PRAGMA wal_autocheckpoint = 0")
        with self._lock:
            self._owners[connection] = threading.current_thread()
        setattr(self._local, key, connection)
        return connection

    def _close_connections_of_ended_threads(self) -> None:
        for connection, owner in list(self._owners.items()):
            if not owner.is_alive():
                del self._owners[connection]
                connection.close()

    async def close(self) -> None:
        """Close every connection; the writer finishes the write it is running first."""
        if self._closed:
            return
        if self._rows_to_index:
            # Best effort: rows left queued (the lock was taken) are still found by a search
            # and indexed by the next writer.
            with contextlib.suppress(sqlite3.Error, DBAPIError):
                self._write_here(search_index.flush, ())
        with self._lock:
            self._closed = True
        await asyncio.wrap_future(self._writer.submit(lambda: None))
        self._writer.shutdown(wait=False)
        with self._lock:
            connections = list(self._owners)
            self._owners.clear()
        for connection in connections:
            connection.close()

    # -- reads -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _file_errors(self) -> Iterator[None]:
        """A full disk or a file we may not write raised as :class:`StorageFullError` or
        :class:`DatabasePermissionError` naming the file, not as a driver error."""
        try:
            yield
        except (sqlite3.Error, DBAPIError, OSError) as exc:
            precise = sqlite_file_error(self._url, exc)
            if precise is None:
                raise
            raise precise from exc

    def _read(self, statement: str, parameters: tuple[Any, ...], *, inline: bool) -> Rows:
        with self._file_errors():
            connection = self._connection(inline=inline)
            with _driver_errors():
                rows: Rows = connection.execute(statement, parameters).fetchall()
        return rows

    def _read_inline(self, statement: str, parameters: tuple[Any, ...]) -> Rows | None:
        """Rows read on the caller's thread, or ``None`` if SQLite answered busy."""
        try:
            return self._read(statement, parameters, inline=True)
        except sqlite3.OperationalError as exc:
            if not _is_lock_error(exc):
                raise
            return None

    async def read_all(self, session_id: str) -> Rows:
        """Every ``(seq, item JSON)`` row of the session, oldest first.

        Asking for one row more than :data:`INLINE_READ_ROWS` on the caller's thread tells a
        short session (read whole, no thread hop: the SDK reads the whole history every turn)
        from a long one, which is then read on a worker thread.
        """
        rows = self._read_inline(_HEAD, (session_id, INLINE_READ_ROWS + 1))
        if rows is not None and len(rows) <= INLINE_READ_ROWS:
            return rows
        return await asyncio.to_thread(self._read, _ALL, (session_id,), inline=False)

    async def read_tail(self, session_id: str, limit: int, *, before: int | None = None) -> Rows:
        """The latest ``limit`` rows of the session (below ``before``), oldest first."""
        statement, parameters = (
            (_TAIL, (session_id, limit))
            if before is None
            else (_TAIL_BELOW, (session_id, limit, before))
        )
        rows = self._read_inline(statement, parameters) if limit <= INLINE_READ_ROWS else None
        if rows is None:
            rows = await asyncio.to_thread(self._read, statement, parameters, inline=False)
        rows.reverse()
        return rows

    # -- writes ------------------------------------------------------------------------------

    def _transaction(
        self,
        what: str,
        body: Callable[..., _T],
        arguments: tuple[Any, ...],
        abandon: threading.Event,
        loop: asyncio.AbstractEventLoop,
    ) -> _T:
        """The write on the writer thread: waits for the lock, retrying a bounded number of
        times (each attempt all or nothing) unless the caller gave up or its event loop
        closed (then nobody can receive the result: see :meth:`_orphaned`)."""
        if loop.is_closed():
            raise self._orphaned(what, arguments)
        connection = self._connection()
        delays = lock_retry_delays()
        while True:
            try:
                return _run_transaction(connection, body, arguments)
            except sqlite3.OperationalError as exc:
                if not _is_lock_error(exc) or abandon.is_set():
                    raise
                if loop.is_closed():
                    raise self._orphaned(what, arguments) from exc
                delay = next(delays, None)
                if delay is None:
                    raise busy_error(what, self._url) from exc
                time.sleep(delay)

    def _orphaned(self, what: str, arguments: tuple[Any, ...]) -> StoreClosedError:
        """A queued write whose event loop closed before it could run: it fails at once
        instead of waiting for the lock (at exit, one write after another, ~45 s each), and
        says so in the log, since no caller is left to receive the error."""
        error = StoreClosedError(
            f"{what} for session {arguments[0]!r} was not stored in {redact(self._url)}: the "
            "event loop that asked for it closed before the write could run. Await writes "
            "(and close the store) before the loop ends."
        )
        logger.error("%s: %s", type(error).__name__, error)
        return error

    def _write_here(self, body: Callable[..., _T], arguments: tuple[Any, ...]) -> _T:
        """The write on this thread, or :data:`_BUSY` if the write lock is not free now."""
        try:
            result = _run_transaction(self._connection(inline=True), body, arguments)
        except sqlite3.OperationalError as exc:
            if _is_lock_error(exc):
                return _BUSY  # type: ignore[no-any-return]
            raise
        self._writes_since_checkpoint += 1
        if self._writes_since_checkpoint >= CHECKPOINT_EVERY_WRITES:
            self._writes_since_checkpoint = 0
            self._checkpoint_in_background()
        return result

    def _checkpoint_in_background(self) -> None:
        """A PASSIVE checkpoint on the writer thread, after the writes queued there."""

        def run() -> None:
            try:
                _checkpoint(self._connection())
            except Exception as exc:  # upkeep only: the next round tries again
                logger.warning("SQLite checkpoint failed on %s: %s", redact(self._url), exc)

        with contextlib.suppress(RuntimeError):  # the store closed meanwhile
            self._writer.submit(run)

    async def _write(self, what: str, body: Callable[..., _T], *arguments: Any) -> _T:
        with self._lock:
            if self._closed:
                raise StoreClosedError(
                    f"the store at {redact(self._url)} is closed; open a new one"
                )
        with self._file_errors():
            result = self._write_here(body, arguments)
        if result is not _BUSY:
            return result
        abandon = threading.Event()
        loop = asyncio.get_running_loop()
        future: Future[_T] = self._writer.submit(
            self._transaction, what, body, arguments, abandon, loop
        )

        def drop_or_stop_retrying() -> None:
            abandon.set()
            future.cancel()  # a write still queued is dropped; one under way runs to its end

        with self._file_errors():
            return await finish_despite_cancellation(
                asyncio.wrap_future(future), drop_or_stop_retrying
            )

    async def append(
        self, session_id: str, items: Sequence[EncodedItem], now: datetime
    ) -> Appended:
        """Store a batch in one transaction: the counters bumped, then every row."""
        rows_to_index = self._rows_to_index + sum(1 for item in items if item.text is not None)
        # Indexing in the same transaction, not on the writer thread: a background indexing
        # transaction would hold the write lock and send every concurrent write the slow way.
        index_now = rows_to_index >= search_index.FLUSH_EVERY_ROWS
        stamp = _format_datetime(now)
        appended = await self._write("add_items", _append, session_id, items, stamp, index_now)
        self._rows_to_index = 0 if index_now else rows_to_index
        self._count_bytes_toward_checkpoint(sum(len(item.item_json) for item in items))
        return appended

    def _count_bytes_toward_checkpoint(self, appended: int) -> None:
        """Checkpoint here, on the caller's thread, once :data:`CHECKPOINT_EVERY_BYTES` have
        been appended. A checkpoint on the writer thread races the next writes, and under a
        steady stream of them never finds the WAL wholly copied, so the WAL never restarts
        and grows without bound (117 MB for 60 MB of items). Run by the connection that just
        committed, before its next write, it does: the WAL then stays within
        ``journal_size_limit``. PASSIVE never waits for a lock; the cost is copying those
        few MB into the database once per few MB appended."""
        self._bytes_since_checkpoint += appended
        if self._bytes_since_checkpoint < CHECKPOINT_EVERY_BYTES:
            return
        self._bytes_since_checkpoint = 0
        self._writes_since_checkpoint = 0
        try:
            with self._file_errors():
                _checkpoint(self._connection(inline=True))
        except Exception as exc:  # upkeep only: the next round tries again
            logger.warning("SQLite checkpoint failed on %s: %s", redact(self._url), exc)

    async def _read_rows(
        self, statement: str, parameters: tuple[Any, ...]
    ) -> list[tuple[Any, ...]]:
        """A short read: on the caller's thread, or a worker thread if SQLite answers busy."""
        rows = self._read_inline(statement, parameters)
        if rows is None:
            rows = await asyncio.to_thread(self._read, statement, parameters, inline=False)
        return rows

    async def turn_of(self, session_id: str, seq: int) -> int | None:
        rows = await self._read_rows(_TURN_OF, (session_id, seq))
        return rows[0][0] if rows else None

    async def record_turns(self, session_id: str, records: Sequence[TurnRecord]) -> None:
        """Write how turns ended, in one transaction."""
        rows = [row_values(session_id, record, _format_datetime) for record in records]
        if rows:
            await self._write("record_turns", _record_turns, rows)

    async def read_recent(
        self, session_id: str, tokens: int, *, after: int | None = None
    ) -> RecentRows:
        start = await self._read_rows(_WINDOW_START, (session_id, tokens))
        start_seq = start[0][0] if start else 0
        rows = await self._read_rows(_RECENT, (session_id, max(start_seq, after or 0)))
        turn_before = None
        if rows:
            below = await self._read_rows(_TURN_BELOW, (session_id, rows[0][0]))
            turn_before = below[0][0] if below else None
        return recent_rows(rows, turn_before, start[0] if start else None, after)

    async def latest_summary(self, session_id: str) -> Summary | None:
        rows = await self._read_rows(_LATEST_SUMMARY, (session_id,))
        if not rows:
            return None
        first_seq, last_seq, text, tokens, model, given, taken, total, created = rows[0]
        return Summary(
            first_seq=first_seq,
            last_seq=last_seq,
            text=text,
            tokens=tokens,
            model=model,
            input_tokens=given,
            output_tokens=taken,
            total_tokens=total,
            created_at=_parse_datetime(created),
        )

    async def add_summary(
        self, session_id: str, summary: Summary, *, previous_last_seq: int
    ) -> bool:
        assert summary.created_at is not None, "a stored summary has its time"
        values = (*row_values(session_id, summary, _format_datetime), previous_last_seq)
        return await self._write("add_summary", _insert_one, _ADD_SUMMARY, values)

    async def recent_usage(self, session_id: str, limit: int) -> list[tuple[int, int]]:
        rows = await self._read_rows(_RECENT_USAGE, (session_id, limit))
        return [(estimated, reported) for estimated, reported in reversed(rows)]

    async def remove(self, session_id: str, seq: int, now: datetime) -> bool:
        """Delete one item and count it out; ``False`` if it was already gone."""
        return await self._write("pop_item", _remove, session_id, seq, _format_datetime(now))

    async def clear(self, session_id: str) -> None:
        """Delete the session's items and its row."""
        await self._write("clear_session", _clear, session_id)

    # -- metadata ----------------------------------------------------------------------------

    async def get_metadata(self, session_id: str) -> dict[str, Any] | None:
        """The session's metadata (``{}`` for none), ``None`` if there is no such session."""
        rows: list[Any] | None = self._read_inline(_METADATA, (session_id,))
        if rows is None:
            rows = await asyncio.to_thread(self._read, _METADATA, (session_id,), inline=False)
        if not rows:
            return None
        stored = rows[0][0]
        return metadata_object(session_id, None if stored is None else json.loads(stored))

    async def update_metadata(
        self, session_id: str, values: Mapping[str, Any], now: datetime
    ) -> dict[str, Any]:
        """Merge ``values`` into the session's metadata in one transaction."""
        stamp = _format_datetime(now)
        return await self._write("update_metadata", _update_metadata, session_id, values, stamp)

    async def create_session(
        self, session_id: str, metadata: Mapping[str, Any], now: datetime
    ) -> None:
        """Create the session with ``metadata`` unless it exists."""
        stamp = _format_datetime(now)
        await self._write(
            "create_session", _create_session, session_id, metadata_json(metadata), stamp
        )


def _run_transaction(
    connection: sqlite3.Connection, body: Callable[..., _T], arguments: tuple[Any, ...]
) -> _T:
    """``body(connection, *arguments)`` in one write transaction, rolled back on any error.

    Lock errors come back as ``sqlite3.OperationalError`` (the callers wait or retry);
    any other driver error as SQLAlchemy's matching exception.
    """
    with _driver_errors():
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = body(connection, *arguments)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return result


def _format_optional(value: datetime | None) -> str | None:
    return _format_datetime(value) if value is not None else None


def _record_turns(connection: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    connection.executemany(_RECORD_TURN, rows)


def _append(
    connection: sqlite3.Connection,
    session_id: str,
    items: Sequence[EncodedItem],
    stamp: str,
    index_now: bool,
) -> Appended:
    count = len(items)
    user_inputs = sum(1 for item in items if item.starts_turn)
    tokens = sum(item.tokens for item in items)
    last_seq, turn_count, cumulative = connection.execute(
        _UPSERT, (session_id, stamp, stamp, count, user_inputs, count, tokens)
    ).fetchone()
    connection.executemany(
        _INSERT,
        [
            (session_id, seq, turn, item.role, item.item_type, item.text, item.item_json, stamp,
             item.tokens, running)
            for seq, turn, running, item in numbered(
                items, last_seq=last_seq, turn_count=turn_count, cumulative_tokens=cumulative
            )
        ],
    )  # fmt: skip
    if index_now:
        search_index.flush(connection)
    return Appended(last_seq=last_seq, turn=turn_count)


def _remove(connection: sqlite3.Connection, session_id: str, seq: int, stamp: str) -> bool:
    removed = connection.execute(_DELETE_ONE, (session_id, seq)).fetchone()
    if removed is None:
        return False
    (turn,) = removed
    below = connection.execute(_TURN_BELOW, (session_id, seq)).fetchone()
    if first_of_turn(turn, below[0] if below is not None else None):
        (turn_count,) = connection.execute(
            _FORGET_TURN, (stamp, turn, turn - 1, session_id)
        ).fetchone()
        if turn_count == turn - 1:
            connection.execute(_FORGET_TURN_ROW, (session_id, turn))
    else:
        connection.execute(_FORGET, (stamp, session_id))
    return True


def _insert_one(connection: sqlite3.Connection, statement: str, values: tuple[Any, ...]) -> bool:
    return connection.execute(statement, values).rowcount == 1


def _checkpoint(connection: sqlite3.Connection) -> None:
    # PASSIVE: copies what it can without waiting for (or blocking) readers and writers.
    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _clear(connection: sqlite3.Connection, session_id: str) -> None:
    connection.execute(_CLEAR_ITEMS, (session_id,))
    connection.execute(_CLEAR_SESSION, (session_id,))


def _create_session(
    connection: sqlite3.Connection, session_id: str, metadata: str | None, stamp: str
) -> None:
    connection.execute(_CREATE_SESSION, (session_id, stamp, stamp, metadata))


def _update_metadata(
    connection: sqlite3.Connection, session_id: str, values: Mapping[str, Any], stamp: str
) -> dict[str, Any]:
    _create_session(connection, session_id, None, stamp)
    (stored,) = connection.execute(_METADATA, (session_id,)).fetchone()
    merged = merged_metadata(session_id, None if stored is None else json.loads(stored), values)
    connection.execute(_SET_METADATA, (metadata_json(merged), stamp, session_id))
    return merged
