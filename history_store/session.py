"""HistorySession: the SDK's ``Session`` protocol over history_store's tables."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from agents.items import TResponseInputItem
from agents.memory import SessionSettings
from agents.memory.session_settings import coerce_session_settings, resolve_session_limit
from sqlalchemy.engine import URL

from ._items import (
    CORRUPT,
    Rows,
    encode_items,
    is_user_input,
    load_item,
    load_items,
    validate_session_id,
)
from .errors import InvalidArgumentError
from .schema import MigrateMode
from .store import HistoryStore

if TYPE_CHECKING:
    from agents.run_context import RunContextWrapper

logger = logging.getLogger("history_store")

# Rows read per round when pop_item skips corrupt rows at the tail.
_POP_WINDOW = 8


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _starts_turn(item: Any) -> bool:
    return isinstance(item, Mapping) and is_user_input(item)


class HistorySession:
    """A conversation history kept in a :class:`HistoryStore`, usable as ``session=``.

    Implements the Agents SDK's ``Session`` protocol: items come back exactly as they were
    added, in the order they were added, ordered by a per-session ``seq`` that only grows.
    Each ``add_items`` call is one transaction: all of its items are stored, or none. A
    cancelled call leaves the whole batch or nothing, never part of it.

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
        history = await self.store.history()
        if effective is None:
            return self._decode(await history.read_all(self.session_id))
        window = effective
        while True:
            rows = await history.read_tail(self.session_id, window)
            decoded = self._decode(rows)
            if len(decoded) >= effective or len(rows) < window:
                return decoded[-effective:]
            window *= 2

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
        history = await self.store.history()
        await history.append(self.session_id, encoded, _utcnow())

    async def pop_item(
        self, *, wrapper: RunContextWrapper[Any] | None = None
    ) -> TResponseInputItem | None:
        """Remove and return the latest item, or ``None`` if the session is empty.

        Corrupt rows are skipped (and kept): the latest readable item is the one removed.
        """
        history = await self.store.history()
        item: TResponseInputItem | None = await history.pop(
            self.session_id, self._decode_row, _starts_turn, _POP_WINDOW, _utcnow()
        )
        return item

    async def clear_session(self, *, wrapper: RunContextWrapper[Any] | None = None) -> None:
        """Delete every item of the session, and the session itself."""
        history = await self.store.history()
        await history.clear(self.session_id)

    async def close(self) -> None:
        """Close the store if this session owns it (see :meth:`from_url`); else nothing."""
        if self._owns_store:
            await self.store.close()


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
