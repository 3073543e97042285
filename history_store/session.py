"""HistorySession: the SDK's ``Session`` protocol over history_store's tables."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from agents.items import TResponseInputItem
from agents.memory import SessionSettings
from agents.memory.session_settings import coerce_session_settings, resolve_session_limit
from sqlalchemy.engine import URL

from . import _run_turns as run_turns
from ._items import (
    CORRUPT,
    check_metadata,
    encode_items,
    load_item,
    load_items,
    validate_session_id,
)
from ._time import utcnow
from .backends.base import Backend, Rows, TurnRecord
from .errors import InvalidArgumentError
from .schema import MigrateMode

if TYPE_CHECKING:
    from agents.run_context import RunContextWrapper

    from .store import HistoryStore

logger = logging.getLogger("history_store")

# Rows read per round when pop_item skips corrupt rows at the tail.
_POP_WINDOW = 8


class HistorySession:
    """A conversation history kept in a :class:`HistoryStore`, usable as ``session=``.

    Implements the Agents SDK's ``Session`` protocol: items come back exactly as they were
    added, in the order they were added, ordered by a per-session ``seq`` that only grows.
    Each ``add_items`` call is one transaction: all of its items are stored, or none. A
    cancelled call leaves the whole batch or nothing, never part of it.

    Open one with ``store.session(session_id)``, or with :meth:`from_url` for a session that
    owns its own store (close it with :meth:`close`).

    A session can carry metadata, a JSON object of the application's own (a user, a tenant):
    ``metadata=`` sets it when this session creates the session's row (its first
    :meth:`add_items` or :meth:`update_metadata`; one more short write then, none when no
    metadata is given); a session that already exists keeps its own.
    :meth:`get_metadata` and :meth:`update_metadata` read and change it.
    """

    session_id: str
    session_settings: SessionSettings | None

    # How from_url opens a store of its own: HistoryStore, set by history_store.store, which
    # imports this module (so this module never imports that one back).
    _open_store: ClassVar[Callable[..., HistoryStore]]

    def __init__(
        self,
        session_id: str,
        *,
        store: HistoryStore,
        session_settings: SessionSettings | dict[str, Any] | None = None,
        owns_store: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.session_id = validate_session_id(session_id)
        self._metadata_on_creation = check_metadata(metadata) if metadata is not None else None
        # True until this session has made sure the row exists (with that metadata).
        self._create_first = metadata is not None
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
        metadata: Mapping[str, Any] | None = None,
    ) -> HistorySession:
        """A session with a store of its own at ``url``; :meth:`close` closes both."""
        store = cls._open_store(url, migrate=migrate)
        return cls(
            session_id,
            store=store,
            session_settings=session_settings,
            owns_store=True,
            metadata=metadata,
        )

    def __repr__(self) -> str:
        return f"HistorySession({self.session_id!r}, store={self.store!r})"

    # -- reads -------------------------------------------------------------------------------

    def _decode_row(self, seq: int, item_json: str) -> Any:
        try:
            return load_item(item_json)
        except ValueError as exc:
            logger.warning(
                "skipping corrupt item in session %r at seq %d: %s", self.session_id, seq, exc
            )
            return CORRUPT

    def _decode(self, rows: Rows) -> list[TResponseInputItem]:
        parsed = load_items([item_json for _, item_json in rows])
        if parsed is not None:
            return parsed
        decoded = [self._decode_row(seq, item_json) for seq, item_json in rows]
        return [item for item in decoded if item is not CORRUPT]

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
        its seq; it is never deleted, and it does not count toward ``limit``.
        """
        effective = resolve_session_limit(limit, self.session_settings)
        if effective is not None and effective < 0:
            raise InvalidArgumentError(f"limit must be None or >= 0, not {effective}")
        if effective == 0:
            return []
        backend = await self.store.backend()
        if effective is None:
            rows = await backend.read_all(self.session_id)
            items = self._decode(rows)
        else:
            window = effective
            while True:
                rows = await backend.read_tail(self.session_id, window)
                items = self._decode(rows)
                if len(items) >= effective or len(rows) < window:
                    items = items[-effective:]
                    break
                window *= 2
        run = run_turns.current.get()
        if run is not None and run.session is self and rows:
            retried = run.retried_tail(items)
            if retried:
                await self._fail_cut_short_turn(backend, rows[-1][0])
                items = items[:-retried]
        return items

    async def _fail_cut_short_turn(self, backend: Backend, last_seq: int) -> None:
        """Record the turn that ends at ``last_seq`` as failed: a run stored its input there
        and was cut short before it could say how it ended (see ``RunTurns.retried_tail``).
        Its items stay stored; the retry running now is a new turn that sends the input once.
        """
        turn = await backend.turn_of(self.session_id, last_seq)
        if turn is not None:
            record = TurnRecord(turn=turn, status="failed", finished_at=utcnow())
            await backend.record_turns(self.session_id, [record])

    # -- writes ------------------------------------------------------------------------------

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
        backend = await self.store.backend()
        if self._create_first:
            await self._create(backend)
        appended = await backend.append(self.session_id, encoded, utcnow())
        run = run_turns.current.get()
        if run is not None and run.session is self:
            # The batch spans the turns from its first item's to the session's latest.
            started = sum(item.starts_turn for item in encoded)
            first = appended.turn - started + encoded[0].starts_turn
            run.saw(first, appended.turn, wrapper)

    async def pop_item(
        self, *, wrapper: RunContextWrapper[Any] | None = None
    ) -> TResponseInputItem | None:
        """Remove and return the latest item, or ``None`` if the session is empty.

        Corrupt rows are skipped (and kept): the latest readable item is the one removed.
        Concurrent pops each remove a different item.
        """
        backend = await self.store.backend()
        while True:
            found = await self._latest_readable(backend)
            if found is None:
                return None
            seq, item = found
            if await backend.remove(self.session_id, seq, utcnow()):
                popped: TResponseInputItem = item
                return popped
            # Another pop removed it between the read and the delete: look again.

    async def _latest_readable(self, backend: Backend) -> tuple[int, Any] | None:
        """``(seq, item)`` of the newest row that decodes, reading :data:`_POP_WINDOW` rows
        at a time from the end; ``None`` if there is none."""
        before: int | None = None
        while True:
            rows = await backend.read_tail(self.session_id, _POP_WINDOW, before=before)
            for seq, item_json in reversed(rows):
                item = self._decode_row(seq, item_json)
                if item is not CORRUPT:
                    return seq, item
            if len(rows) < _POP_WINDOW:
                return None
            before = rows[0][0]

    async def clear_session(self, *, wrapper: RunContextWrapper[Any] | None = None) -> None:
        """Delete every item of the session, and the session itself (its metadata too: a
        session opened with ``metadata=`` sets it again when it is next written)."""
        backend = await self.store.backend()
        await backend.clear(self.session_id)
        self._create_first = self._metadata_on_creation is not None

    async def close(self) -> None:
        """Close the store if this session owns it (see :meth:`from_url`); else nothing."""
        if self._owns_store:
            await self.store.close()

    # -- metadata ----------------------------------------------------------------------------

    async def _create(self, backend: Backend) -> None:
        assert self._metadata_on_creation is not None
        await backend.create_session(self.session_id, self._metadata_on_creation, utcnow())
        self._create_first = False

    async def get_metadata(self) -> dict[str, Any] | None:
        """The session's metadata object (``{}`` if it has none), or ``None`` when the
        session does not exist yet (nothing was ever added to it)."""
        backend = await self.store.backend()
        return await backend.get_metadata(self.session_id)

    async def update_metadata(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``values`` into the session's metadata and return the result.

        Each key of ``values`` is set (added, or its value replaced whole); other keys stay.
        One transaction: concurrent updates of one session each see the other's keys. A
        session that does not exist yet is created (with no items). Values must be JSON:
        :class:`InvalidArgumentError` otherwise, and nothing changes.
        """
        checked = check_metadata(values)
        backend = await self.store.backend()
        if self._create_first:
            await self._create(backend)
        return await backend.update_metadata(self.session_id, checked, utcnow())


# The SDK asks inspect.signature whether a session method takes ``wrapper``, for each of the
# four methods, on every session call of a run (``agents.memory.session``); each answer
# parsed the function anew (~130 us for the four here). A signature computed once and kept
# on the function is what inspect.signature returns first: the same answer, ~3x sooner.
for _method in (
    HistorySession.get_items,
    HistorySession.add_items,
    HistorySession.pop_item,
    HistorySession.clear_session,
):
    setattr(_method, "__signature__", inspect.signature(_method))  # noqa: B010
del _method
