"""HistorySession: the SDK's ``Session`` protocol over history_store's tables."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from agents.items import TResponseInputItem
from agents.memory import SessionSettings
from agents.memory.session_settings import coerce_session_settings, resolve_session_limit
from sqlalchemy import Row, Select, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from . import _fastpath, tables
from ._engine import BEGIN_OPTION, WRITE_OPTIONS, retry_on_lock
from ._items import encode_items, is_user_input, load_item, validate_session_id
from .errors import InvalidArgumentError
from .schema import MigrateMode
from .store import HistoryStore

if TYPE_CHECKING:
    from agents.run_context import RunContextWrapper

logger = logging.getLogger("history_store")

_T = TypeVar("_T")
_items = tables.items
_sessions = tables.sessions
READ_OPTIONS = {BEGIN_OPTION: "AUTOCOMMIT"}
# Rows read per round when skipping corrupt rows at the tail.
_TAIL_WINDOW = 8


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


async def _finish_even_if_cancelled(operation: Awaitable[_T]) -> _T:
    """Await a write to its end even when the caller is cancelled, then re-raise.

    A write is one transaction; letting it finish means a cancelled caller leaves either the
    whole batch or nothing, and the connection goes back to the pool clean.
    """
    task = asyncio.ensure_future(operation)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError as exc:
            cancelled = cancelled or exc
    if cancelled is not None:
        if not task.cancelled() and task.exception() is not None:
            task.exception()  # retrieved, so asyncio does not log it as never retrieved
        raise cancelled
    return task.result()


def _counters_upsert(dialect: str) -> Any:
    """INSERT a session row, or bump its counters; RETURNING the new counters.

    The row lock this takes serializes writers of one session, so seq ranges never overlap.
    """
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(_sessions)
    return statement.on_conflict_do_update(
        index_elements=[_sessions.c.session_id],
        set_={
            "last_seq": _sessions.c.last_seq + statement.excluded.last_seq,
            "item_count": _sessions.c.item_count + statement.excluded.item_count,
            "turn_count": _sessions.c.turn_count + statement.excluded.turn_count,
            "updated_at": statement.excluded.updated_at,
        },
    ).returning(_sessions.c.last_seq, _sessions.c.turn_count)


_UPSERTS = {dialect: _counters_upsert(dialect) for dialect in ("sqlite", "postgresql")}


class HistorySession:
    """A conversation history kept in a :class:`HistoryStore`, usable as ``session=``.

    Implements the Agents SDK's ``Session`` protocol: items come back exactly as they were
    added, in the order they were added, ordered by a per-session ``seq`` that only grows.
    Each ``add_items`` call is one transaction: all of its items are stored, or none.

    Open one with ``store.session(session_id)``, or with :meth:`from_url` for a session that
    owns its own store (close it with :meth:`close`).
    """

    session_id: str
    session_settings: SessionSettings | None

    def __init__(
        self,
        session_id: str,
        *,
        store: HistoryStore,
        session_settings: SessionSettings | dict[str, Any] | None = None,
        owns_store: bool = False,
    ) -> None:
        self.session_id = validate_session_id(session_id)
        self.session_settings = (
            coerce_session_settings(session_settings)
            if session_settings is not None
            else SessionSettings()
        )
        self.store = store
        self._owns_store = owns_store

    @classmethod
    def from_url(
        cls,
        session_id: str,
        *,
        url: str | URL | None = None,
        migrate: MigrateMode | None = None,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> HistorySession:
        """A session with a store of its own at ``url``; :meth:`close` closes both."""
        store = HistoryStore(url, migrate=migrate)
        return cls(session_id, store=store, session_settings=session_settings, owns_store=True)

    def __repr__(self) -> str:
        return f"HistorySession({self.session_id!r}, store={self.store!r})"

    # -- reads -------------------------------------------------------------------------------

    def _select_items(self) -> Select[int, str]:
        return select(_items.c.seq, _items.c.item).where(_items.c.session_id == self.session_id)

    def _decode(self, rows: Sequence[Row[int, str]]) -> list[TResponseInputItem]:
        decoded: list[TResponseInputItem] = []
        for seq, item_json in rows:
            try:
                decoded.append(load_item(item_json))
            except ValueError as exc:
                logger.warning(
                    "skipping corrupt item in session %r at seq %d: %s",
                    self.session_id,
                    seq,
                    exc,
                )
        return decoded

    async def _read_tail(self, connection: AsyncConnection, limit: int) -> list[TResponseInputItem]:
        # Corrupt rows do not count toward the limit, so the window grows until it holds
        # `limit` good items or reaches the session's start.
        window = limit
        while True:
            statement = self._select_items().order_by(_items.c.seq.desc()).limit(window)
            rows = list(reversed((await connection.execute(statement)).all()))
            decoded = self._decode(rows)
            if len(decoded) >= limit or len(rows) < window:
                return decoded[-limit:]
            window *= 2

    async def get_items(
        self,
        limit: int | None = None,
        *,
        wrapper: RunContextWrapper[Any] | None = None,
    ) -> list[TResponseInputItem]:
        """The session's items in chronological order.

        Args:
            limit: return only the latest ``limit`` items (still oldest first). ``None``
                uses ``session_settings.limit``; when that is also ``None``, every item.
                ``0`` returns an empty list.
            wrapper: the SDK's run context; accepted for the protocol, not used.

        A stored row whose JSON is corrupt is skipped with a warning naming the session and
        its seq; it is never deleted.
        """
        effective = resolve_session_limit(limit, self.session_settings)
        if effective is not None and effective < 0:
            raise InvalidArgumentError(f"limit must be None or >= 0, not {effective}")
        if effective == 0:
            return []
        engine = await self.store.engine()
        async with engine.connect() as connection:
            # No BEGIN: each SELECT is its own snapshot, and a tail read that widens its window
            # re-reads the whole window. On SQLite that saves a trip to the driver's thread.
            await connection.execution_options(**READ_OPTIONS)
            if effective is None:
                statement = self._select_items().order_by(_items.c.seq)
                return self._decode((await connection.execute(statement)).all())
            return await self._read_tail(connection, effective)

    # -- writes ------------------------------------------------------------------------------

    async def _write(self, what: str, operation: Any, on_sqlite: Any = None) -> Any:
        """Run ``operation(connection)`` as one transaction, retried on lock errors.

        On SQLite the transaction's body is ``on_sqlite(connection)`` when given: the same
        statements as one driver round trip (see ``_fastpath``), and writers of this process
        queue on one lock before asking SQLite for its write lock.
        """
        engine = await self.store.engine()
        sqlite = engine.dialect.name == "sqlite"
        body = on_sqlite if sqlite and on_sqlite is not None else operation

        async def transaction() -> Any:
            async with engine.connect() as connection:
                await connection.execution_options(**WRITE_OPTIONS)
                async with connection.begin():
                    return await body(connection)

        async def attempt() -> Any:
            if not sqlite:
                return await transaction()
            async with _fastpath.write_lock(engine):
                return await transaction()

        return await _finish_even_if_cancelled(
            retry_on_lock(attempt, what=what, url=self.store.sqlalchemy_url)
        )

    async def add_items(
        self,
        items: list[TResponseInputItem],
        *,
        wrapper: RunContextWrapper[Any] | None = None,
    ) -> None:
        """Append ``items`` in one transaction (all stored, or none).

        Every item must be a JSON-serializable dict; otherwise :class:`InvalidItemError`
        names the first bad one and nothing is stored. An empty list does nothing.
        """
        if not items:
            return
        encoded = encode_items(items)
        user_inputs = sum(1 for item in encoded if item.starts_turn)
        count = len(encoded)

        async def insert(connection: AsyncConnection) -> None:
            now = _utcnow()
            upsert = _UPSERTS[connection.dialect.name]
            result = await connection.execute(
                upsert,
                {
                    "session_id": self.session_id,
                    "created_at": now,
                    "updated_at": now,
                    "item_count": count,
                    "turn_count": user_inputs,
                    "last_seq": count,
                },
            )
            last_seq, turn_count = result.one()
            seq = last_seq - count
            turn = turn_count - user_inputs
            rows = []
            for item in encoded:
                seq += 1
                turn += item.starts_turn
                rows.append(
                    {
                        "session_id": self.session_id,
                        "seq": seq,
                        "turn": turn,
                        "role": item.role,
                        "item_type": item.item_type,
                        "text": item.text,
                        "item": item.item_json,
                        "created_at": now,
                    }
                )
            await connection.execute(_items.insert(), rows)

        async def insert_sqlite(connection: AsyncConnection) -> None:
            await _fastpath.run_on_driver(
                connection, _fastpath.add_rows, self.session_id, encoded, user_inputs, _utcnow()
            )

        await self._write("add_items", insert, insert_sqlite)

    async def pop_item(
        self, *, wrapper: RunContextWrapper[Any] | None = None
    ) -> TResponseInputItem | None:
        """Remove and return the latest item, or ``None`` if the session is empty.

        Corrupt rows are skipped (and kept): the latest readable item is the one removed.
        """

        async def pop(connection: AsyncConnection) -> TResponseInputItem | None:
            below: int | None = None
            while True:
                statement = select(_items.c.seq, _items.c.item, _items.c.turn).where(
                    _items.c.session_id == self.session_id
                )
                if below is not None:
                    statement = statement.where(_items.c.seq < below)
                statement = statement.order_by(_items.c.seq.desc()).limit(_TAIL_WINDOW)
                rows = (await connection.execute(statement)).all()
                for seq, item_json, turn in rows:
                    try:
                        item = load_item(item_json)
                    except ValueError:
                        logger.warning(
                            "pop_item skipped corrupt item in session %r at seq %d",
                            self.session_id,
                            seq,
                        )
                        continue
                    await self._forget(connection, seq, turn, item)
                    return item  # type: ignore[no-any-return]
                if len(rows) < _TAIL_WINDOW:
                    return None
                below = rows[-1][0]

        def decode(seq: int, item_json: str) -> Any:
            try:
                return load_item(item_json)
            except ValueError:
                logger.warning(
                    "pop_item skipped corrupt item in session %r at seq %d", self.session_id, seq
                )
                return _fastpath.CORRUPT

        def starts_turn(item: Any) -> bool:
            return isinstance(item, Mapping) and is_user_input(item)

        async def pop_sqlite(connection: AsyncConnection) -> Any:
            return await _fastpath.run_on_driver(
                connection,
                _fastpath.pop_row,
                self.session_id,
                _TAIL_WINDOW,
                decode,
                starts_turn,
                _utcnow(),
            )

        result: TResponseInputItem | None = await self._write("pop_item", pop, pop_sqlite)
        return result

    async def _forget(self, connection: AsyncConnection, seq: int, turn: int, item: Any) -> None:
        await connection.execute(
            delete(_items).where(_items.c.session_id == self.session_id, _items.c.seq == seq)
        )
        values: dict[str, Any] = {
            "item_count": _sessions.c.item_count - 1,
            "updated_at": _utcnow(),
        }
        if isinstance(item, Mapping) and is_user_input(item):
            values["turn_count"] = turn - 1
        await connection.execute(
            update(_sessions).where(_sessions.c.session_id == self.session_id).values(values)
        )

    async def clear_session(self, *, wrapper: RunContextWrapper[Any] | None = None) -> None:
        """Delete every item of the session, and the session itself."""

        async def clear(connection: AsyncConnection) -> None:
            await connection.execute(delete(_items).where(_items.c.session_id == self.session_id))
            await connection.execute(
                delete(_sessions).where(_sessions.c.session_id == self.session_id)
            )

        await self._write("clear_session", clear)

    async def close(self) -> None:
        """Close the store if this session owns it (see :meth:`from_url`); else nothing."""
        if self._owns_store:
            await self.store.close()
