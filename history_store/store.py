"""HistoryStore: one database, its engines, and the sessions that live in it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
import warnings
import weakref
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

from agents.memory import SessionSettings
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from ._engine import (
    Durability,
    is_sqlite,
    make_engine,
    redact,
    resolve_url,
    sqlite_path,
    unavailable,
    with_durability,
)
from ._loop_resources import loop_engines
from .backends.base import Backend
from .backends.core import CoreBackend
from .backends.sqlite import SQLiteBackend
from .budget.context import ContextBudget
from .budget.tokens import default_counter
from .errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    InvalidArgumentError,
    StoreClosedError,
)
from .schema import MigrateMode, ensure_schema
from .session import HistorySession


class HistoryStore:
    """A database of conversation histories, shared by all the sessions opened from it.

    Args:
        url: SQLAlchemy URL. Default: ``$HISTORY_STORE_URL``, else
            ``sqlite+aiosqlite:///./history.db``. ``sqlite://`` and ``postgresql://`` get the
            async drivers (aiosqlite, asyncpg).
        migrate: ``"auto"`` upgrades the schema to the newest revision on first use (the
            default for SQLite); ``"check"`` raises :class:`SchemaOutOfDateError` naming the
            command to run instead (the default for server databases, whose schema changes
            belong to a deploy step).
        default_session_id: the id :meth:`session` uses when given none; by default each
            such session gets a new id of its own (nothing is shared by accident).
        durability: SQLite only. ``"normal"`` (the default, or the URL's
            ``?synchronous=normal``): a commit survives a crash of the process, not always a
            power loss or an OS crash, which can lose the last commits (the file stays
            whole). ``"full"`` (``?synchronous=full``): every commit is flushed to disk
            before ``add_items`` returns, so it survives those too, at the cost of an fsync
            per write. On PostgreSQL the server's ``synchronous_commit`` decides.
        budget: the :class:`ContextBudget` of the sessions opened from this store (each can
            have its own: ``session(id, budget=...)``); ``None``: sessions return every item.

    The sessions read and write through the store's one backend (``backends/``): the stdlib
    driver on an SQLite file, asyncpg on PostgreSQL, SQLAlchemy Core for in-memory SQLite.
    Schema, migrations and the tools use an async SQLAlchemy engine. Async connections
    belong to an event loop, so a store used from several loops (``Runner.run_sync`` in
    threads) keeps one engine, and one asyncpg pool, per loop, each closed in its own loop.
    Close the store with ``await store.close()`` or ``async with HistoryStore(...) as store:``.
    """

    def __init__(
        self,
        url: str | URL | None = None,
        *,
        migrate: MigrateMode | None = None,
        default_session_id: str | None = None,
        durability: Durability | None = None,
        budget: ContextBudget | None = None,
    ) -> None:
        if budget is not None and not isinstance(budget, ContextBudget):
            raise InvalidArgumentError(
                f"budget must be a history_store.ContextBudget, got {type(budget).__name__}"
            )
        self.budget = budget
        self._url = with_durability(resolve_url(url), durability)
        if migrate is None:
            migrate = "auto" if is_sqlite(self._url) else "check"
        if migrate not in ("auto", "check"):
            raise ConfigurationError(f"migrate must be 'auto' or 'check', not {migrate!r}")
        self._migrate: MigrateMode = migrate
        self.default_session_id = default_session_id
        self._engines = loop_engines(lambda pooled: make_engine(self._url, pooled=pooled))
        self._schema_ready = False
        self._schema_checks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Task[None]
        ] = weakref.WeakKeyDictionary()
        self._schema_lock = threading.Lock()
        self._closed = False
        self._backend = _open_backend(self._url, self._engines.get)

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return redact(self._url)

    @property
    def sqlalchemy_url(self) -> URL:
        """The full database URL (with password) as a SQLAlchemy ``URL``."""
        return self._url

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._url.get_backend_name()

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"HistoryStore({self.url!r})"

    def session(
        self,
        session_id: str | None = None,
        *,
        session_settings: SessionSettings | dict[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        budget: ContextBudget | None = None,
    ) -> HistorySession:
        """A session of this store, for ``Runner.run(..., session=...)``.

        Without ``session_id`` (and no ``default_session_id`` on the store) the session gets
        a new id of its own (:func:`new_session_id`): read it from ``session.session_id`` to
        continue the conversation later. No database work happens until the session is used.
        ``metadata`` (a JSON object) is set when the session is created, by its first write;
        a session that already exists keeps its own (change it with
        ``await session.update_metadata(...)``). ``budget`` overrides the store's
        :class:`ContextBudget` for this session.
        """
        if session_id is None:
            session_id = self.default_session_id or new_session_id()
        return HistorySession(
            session_id,
            store=self,
            session_settings=session_settings,
            metadata=metadata,
            budget=budget,
        )

    async def engine(self) -> AsyncEngine:
        """The engine for the running event loop, the schema checked or migrated once.

        Each loop's engine is closed inside that loop when the loop ends (see
        ``_loop_resources``), so ``asyncio.run`` per call and ``Runner.run_sync`` in threads
        leave no connections behind.
        """
        if self._closed:
            raise StoreClosedError(f"{self!r} is closed; open a new HistoryStore")
        try:
            # Making an SQLite engine creates the file: a folder we cannot write fails here.
            engine = await self._engines.get()
            if not self._schema_ready:
                await self._check_schema_once(engine)
        except DatabaseUnavailableError:
            raise  # already named (a ConnectionError, so an OSError too)
        except (OSError, DBAPIError) as exc:
            # The first contact with the database: name it (password hidden) and what to
            # check, rather than a bare driver error.
            raise unavailable(self._url, exc) from exc
        self._schema_ready = True
        return engine

    async def backend(self) -> Backend:
        """What the sessions read and write through (``backends/``), the schema checked (or
        migrated) first, once."""
        if self._closed:
            raise StoreClosedError(f"{self!r} is closed; open a new HistoryStore")
        if not self._schema_ready:
            await self.engine()
        return self._backend

    async def _check_schema_once(self, engine: AsyncEngine) -> None:
        """Check (or migrate) the schema once per event loop however many first calls
        arrive together: 50 concurrent first calls each ran the check, on up to 30 engine
        connections beside the sessions' pool. On PostgreSQL the check's connection is then
        closed, so the sessions' pool (``backends/postgres.POOL_SIZE``) is all the store
        holds."""
        loop = asyncio.get_running_loop()
        with self._schema_lock:
            check = self._schema_checks.get(loop)
            if check is None or (check.done() and (check.cancelled() or check.exception())):
                check = loop.create_task(self._check_schema(engine))
                self._schema_checks[loop] = check
        await asyncio.shield(check)

    async def _check_schema(self, engine: AsyncEngine) -> None:
        # Every write counts tokens. Loading tiktoken's encoding takes 0.5-2 s, once per
        # process: done here, in a thread beside the schema check, so the first write does
        # not stall the event loop for it.
        counter = self.budget.token_counter if self.budget is not None else default_counter
        loading = asyncio.ensure_future(asyncio.to_thread(counter))
        try:
            await ensure_schema(engine, self._url, self._migrate)
        finally:
            await loading
        if not is_sqlite(self._url):
            await engine.dispose()

    def __del__(self) -> None:
        # Only a store that opened something holds anything to leak (and one whose
        # __init__ failed has nothing at all).
        if not getattr(self, "_closed", True) and (self._schema_ready or len(self._engines)):
            with contextlib.suppress(Exception):  # the interpreter may be shutting down
                warnings.warn(
                    f"{self!r} was never closed; close it with `await store.close()` or "
                    "`async with HistoryStore(...) as store:`",
                    ResourceWarning,
                    stacklevel=2,
                )

    async def close(self) -> None:
        """Close every connection of the store. Sessions of a closed store raise on use."""
        self._closed = True
        await self._backend.close()
        await self._engines.dispose_all()

    async def __aenter__(self) -> HistoryStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


def new_session_id() -> str:
    """A new, unique session id (a random UUID)."""
    return str(uuid.uuid4())


def _open_backend(url: URL, engine: Callable[[], Awaitable[AsyncEngine]]) -> Backend:
    """The backend for ``url``; ``engine`` gives the store's engine of the running loop."""
    if not is_sqlite(url):
        try:
            from .backends.postgres import PostgresBackend
        except ModuleNotFoundError as exc:
            if exc.name != "asyncpg":
                raise
            raise ConfigurationError(
                f"{redact(url)} needs the asyncpg driver: pip install 'history-store[postgres]'"
            ) from exc
        return PostgresBackend(url)
    path = sqlite_path(url)
    return SQLiteBackend(path, url) if path is not None else CoreBackend(engine)


HistorySession._open_store = HistoryStore
