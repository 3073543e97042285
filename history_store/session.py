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
from ._compaction import compact
from ._items import (
    CORRUPT,
    check_metadata,
    encode_items,
    load_items,
    load_or_skip,
    validate_session_id,
)
from ._time import utcnow
from ._window import Window, read_window
from .backends.base import Backend, Rows, Summary, TurnRecord
from .budget.context import ContextBudget, Summarizes
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

    With a ``budget`` (:class:`~history_store.ContextBudget`; default: the store's),
    :meth:`get_items` without a limit returns what fits the budget: the newest summary as one
    leading message, then the newest whole turns (see :meth:`get_items`). Every item stays
    stored; :meth:`compact` writes a summary of the turns that left that window.
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
        budget: ContextBudget | None = None,
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
        if budget is not None and not isinstance(budget, ContextBudget):
            raise InvalidArgumentError(
                f"budget must be a history_store.ContextBudget, got {type(budget).__name__}"
            )
        self.budget: ContextBudget | None = budget if budget is not None else store.budget
        """The token budget of :meth:`get_items` without a limit (``None``: every item)."""
        if self.budget is not None and self.session_settings.limit is not None:
            raise InvalidArgumentError(
                "a session takes a token budget or session_settings.limit, not both: the "
                "SDK passes that limit to get_items explicitly, which reads the full history"
            )

    @classmethod
    def from_url(
        cls,
        session_id: str,
        *,
        url: str | URL | None = None,
        migrate: MigrateMode | None = None,
        session_settings: SessionSettings | dict[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        budget: ContextBudget | None = None,
    ) -> HistorySession:
        """A session with a store of its own at ``url``; :meth:`close` closes both."""
        store = cls._open_store(url, migrate=migrate)
        return cls(
            session_id,
            store=store,
            session_settings=session_settings,
            owns_store=True,
            metadata=metadata,
            budget=budget,
        )

    def __repr__(self) -> str:
        return f"HistorySession({self.session_id!r}, store={self.store!r})"

    # -- reads -------------------------------------------------------------------------------

    def _decode_row(self, seq: int, item_json: str) -> Any:
        return load_or_skip(self.session_id, seq, item_json)

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
                uses ``session_settings.limit``; when that is also ``None``, every item, or
                with a budget what fits it. ``0`` returns an empty list.
            wrapper: the SDK's run context; accepted for the protocol, not used.

        With a budget (this session's, or the one ``history_store.Runner`` runs with) and no
        limit: the newest summary (if any, and if it fits) as one leading ``system``
        message, then the newest whole turns whose stored token counts, calibrated by what
        the server reported for recent turns, fit ``budget.limit`` with it. A turn is never
        split (a tool call never goes without its output). Read with plain
        ``agents.Runner``, that budgets the history alone; ``history_store.Runner`` also
        counts each request's instructions, tools and new input.

        Failed and blocked turns are never returned. A stored row whose JSON is corrupt is
        skipped with a warning naming the session and its seq; it is never deleted, and it
        does not count toward ``limit``.
        """
        effective = resolve_session_limit(limit, self.session_settings)
        if effective is not None and effective < 0:
            raise InvalidArgumentError(f"limit must be None or >= 0, not {effective}")
        if effective == 0:
            return []
        backend = await self.store.backend()
        own_run, budget = self._run_and_budget()
        if effective is None and budget is not None:
            return await self._read_window(backend, budget, own_run)
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
        if own_run is not None and rows:
            retried = own_run.retried_tail(items)
            if retried:
                await self._fail_cut_short_turn(backend, rows[-1][0])
                items = items[:-retried]
        return items

    def _run_and_budget(self) -> tuple[run_turns.RunTurns | None, ContextBudget | None]:
        """The ``history_store.Runner`` run this session is serving (``None``: none), and the
        budget in force: the run's, else this session's."""
        run = run_turns.current.get()
        own_run = run if run is not None and run.session is self else None
        budget = own_run.budget if own_run is not None and own_run.budget else self.budget
        return own_run, budget

    async def _read_window(
        self, backend: Backend, budget: ContextBudget, run: run_turns.RunTurns | None
    ) -> list[TResponseInputItem]:
        window = await read_window(backend, self.session_id, budget)
        if run is not None:
            retried = run.retried_tail(window.items[window.history_start :])
            if retried:
                await self._fail_cut_short_turn(backend, window.seqs[-1])
                window.drop_tail(retried)
            run.window = window
        return list(window.items)

    async def window(self, budget: ContextBudget | None = None) -> Window:
        """What :meth:`get_items` without a limit would return under ``budget`` (default:
        this session's), with each item's token count, turn and seq: what the next request
        carries of the history. Raises :class:`InvalidArgumentError` without any budget."""
        chosen = budget if budget is not None else self.budget
        if chosen is None:
            raise InvalidArgumentError(
                "a window needs a token budget: pass one, or open the session with budget="
            )
        backend = await self.store.backend()
        return await read_window(backend, self.session_id, chosen)

    async def _fail_cut_short_turn(self, backend: Backend, last_seq: int) -> None:
        """Record the turn that ends at ``last_seq`` as failed: a run stored its input there
        and was cut short before it could say how it ended (see ``RunTurns.retried_tail``).
        Its items stay stored; the retry running now is a new turn that sends the input once.
        """
        turn = await backend.turn_of(self.session_id, last_seq)
        if turn is not None:
            record = TurnRecord(turn=turn, status="failed", finished_at=utcnow())
            await backend.record_turns(self.session_id, [record])

    async def compact(
        self, *, summarizer: Summarizes | None = None, budget: ContextBudget | None = None
    ) -> list[Summary]:
        """Summarize the turns that have left this session's window; the new summaries.

        ``budget`` defaults to the session's, ``summarizer`` to the budget's. The turns
        between the newest summary and the window's start are folded into a new summary
        (``hs_summaries``), in pieces each request can take; nothing is deleted. Returns
        ``[]`` when nothing has left the window. ``history_store.Runner`` does this itself
        after each turn when the budget has a summarizer; with plain ``agents.Runner``, call
        it after a run.
        """
        chosen = budget if budget is not None else self.budget
        if chosen is None:
            raise InvalidArgumentError(
                "compact needs a token budget: pass budget=, or open the session with one"
            )
        writer = summarizer if summarizer is not None else chosen.summarizer
        if writer is None:
            raise InvalidArgumentError(
                "compact needs a summarizer: pass summarizer=history_store.Summarizer(model), "
                "or give the budget one"
            )
        backend = await self.store.backend()
        return await compact(backend, self.session_id, chosen, writer)

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
        own_run, budget = self._run_and_budget()
        encoded = encode_items(items, budget.counter if budget is not None else None)
        backend = await self.store.backend()
        if self._create_first:
            await self._create(backend)
        appended = await backend.append(self.session_id, encoded, utcnow())
        if own_run is not None:
            # The batch spans the turns from its first item's to the session's latest.
            started = sum(item.starts_turn for item in encoded)
            first = appended.turn - started + encoded[0].starts_turn
            own_run.saw(
                first, appended.turn, wrapper, first_seq=appended.last_seq - len(encoded) + 1
            )

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
        size = 1  # the newest row nearly always decodes: read only it first
        while True:
            rows = await backend.read_tail(self.session_id, size, before=before)
            for seq, item_json in reversed(rows):
                item = self._decode_row(seq, item_json)
                if item is not CORRUPT:
                    return seq, item
            if len(rows) < size:
                return None
            before, size = rows[0][0], _POP_WINDOW

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
