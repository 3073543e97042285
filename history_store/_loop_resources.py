"""One engine (or connection pool) per event loop, each closed inside its own loop before
that loop goes away.

Async drivers tie a connection to the loop that opened it (asyncpg's transport, aiosqlite's
futures), so a store used from several loops needs one engine per loop. Loops come and go:
``asyncio.run`` per request, ``Runner.run_sync`` in worker threads. A pool left behind by a
finished loop holds sockets and aiosqlite threads that nothing can close any more, and since
asyncpg connections point back at their loop, a weakly keyed table never lets go of either.

So each pooled resource is closed from inside its own loop when that loop shuts down its
async generators, which ``asyncio.run`` and ``Runner.run_sync`` both do before they return:
a small guard generator registered with the loop does it. A loop that has already been
through that shutdown and is being reused (``run_sync`` keeps the thread's default loop)
cannot take a new guard without a warning, so it gets a resource without a pool, which never
holds an idle connection.

The resources are SQLAlchemy engines (``HistoryStore.engine``) and, on PostgreSQL, the
asyncpg pools of the sessions' direct path (``backends.postgres``).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

_R = TypeVar("_R")


@dataclass(eq=False)
class _Entry(Generic[_R]):
    resource: _R
    guard: AsyncGenerator[None, None] | None = field(default=None, repr=False)


def _shut_down_before(loop: asyncio.AbstractEventLoop) -> bool:
    # CPython's and uvloop's loops record this; a loop without the flag gets a pool and a
    # guard, the safe default.
    return bool(getattr(loop, "_asyncgens_shutdown_called", False))


class LoopResources(Generic[_R]):
    """The engines or pools of one store, keyed by event loop.

    Args:
        factory: makes a resource; its argument says whether it may keep a pool of idle
            connections.
        close: closes a resource, awaited inside the resource's own loop.
        drop: lets go of a resource whose loop was closed without a shutdown: its
            connections cannot be awaited any more and close as they are collected.

    ``get()`` returns the running loop's resource, creating it on first use. ``dispose_all()``
    closes every resource it can reach: the running loop's and those of loops still running
    in other threads directly, the rest by dropping them.
    """

    def __init__(
        self,
        factory: Callable[[bool], _R],
        close: Callable[[_R], Awaitable[None]],
        drop: Callable[[_R], None],
    ) -> None:
        self._factory = factory
        self._close = close
        self._drop = drop
        self._entries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Entry[_R]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    async def get(self) -> _R:
        """The resource of the running loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._drop_closed_loops()
            entry = self._entries.get(loop)
            if entry is None:
                pooled = not _shut_down_before(loop)
                entry = _Entry(self._factory(pooled))
                self._entries[loop] = entry
                if pooled:
                    entry.guard = self._dispose_at_shutdown(weakref.ref(loop), entry)
                    guard = entry.guard
                else:
                    guard = None
            else:
                guard = None
        if guard is not None:
            # The first step registers the generator with this loop (its firstiter hook).
            await guard.__anext__()
        return entry.resource

    async def _dispose_at_shutdown(
        self, loop_ref: weakref.ref[asyncio.AbstractEventLoop], entry: _Entry[_R]
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            self._forget(loop_ref, entry)
            await self._close(entry.resource)

    def _forget(self, loop_ref: weakref.ref[asyncio.AbstractEventLoop], entry: _Entry[_R]) -> None:
        loop = loop_ref()
        with self._lock:
            if loop is not None and self._entries.get(loop) is entry:
                del self._entries[loop]

    def _drop_closed_loops(self) -> None:
        # A loop closed without shutting down its generators: its connections cannot be
        # awaited any more.
        closed = [loop for loop in list(self._entries) if loop.is_closed()]
        for loop in closed:
            self._drop(self._entries.pop(loop).resource)

    async def dispose_all(self) -> None:
        """Close every resource: each in its own loop where that loop still runs."""
        with self._lock:
            entries = list(self._entries.items())
            self._entries.clear()
        running = asyncio.get_running_loop()
        for loop, entry in entries:
            if loop is running:
                await self._close_entry(entry)
            elif loop.is_running():
                future = asyncio.run_coroutine_threadsafe(self._close_entry(entry), loop)
                await asyncio.wrap_future(future)
            else:
                self._drop(entry.resource)

    async def _close_entry(self, entry: _Entry[_R]) -> None:
        if entry.guard is not None:
            # Closing the guard closes the resource and unregisters it from its loop.
            await entry.guard.aclose()
        else:
            await self._close(entry.resource)


def loop_engines(factory: Callable[[bool], AsyncEngine]) -> LoopResources[AsyncEngine]:
    """One SQLAlchemy engine per event loop, disposed in its loop."""
    return LoopResources(
        factory,
        close=lambda engine: engine.dispose(),
        drop=lambda engine: engine.sync_engine.dispose(close=False),
    )
