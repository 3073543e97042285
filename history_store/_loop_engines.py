"""One engine per event loop, each closed inside its own loop before that loop goes away.

Async drivers tie a connection to the loop that opened it (asyncpg's transport, aiosqlite's
futures), so a store used from several loops needs one engine per loop. Loops come and go:
``asyncio.run`` per request, ``Runner.run_sync`` in worker threads. A pool left behind by a
finished loop holds sockets and aiosqlite threads that nothing can close any more, and since
asyncpg connections point back at their loop, a weakly keyed table never lets go of either.

So each pooled engine is disposed from inside its own loop when that loop shuts down its
async generators, which ``asyncio.run`` and ``Runner.run_sync`` both do before they return:
a small guard generator registered with the loop does it. A loop that has already been
through that shutdown and is being reused (``run_sync`` keeps the thread's default loop)
cannot take a new guard without a warning, so it gets an engine without a pool, which never
holds an idle connection.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

EngineFactory = Callable[[bool], AsyncEngine]
"""Makes an engine; the argument says whether it may keep a pool of idle connections."""


@dataclass(eq=False)
class _Entry:
    engine: AsyncEngine
    guard: AsyncGenerator[None, None] | None = field(default=None, repr=False)


def _shut_down_before(loop: asyncio.AbstractEventLoop) -> bool:
    # CPython's and uvloop's loops record this; a loop without the flag gets a pool and a
    # guard, the safe default.
    return bool(getattr(loop, "_asyncgens_shutdown_called", False))


class LoopEngines:
    """The engines of one store, keyed by event loop.

    ``get()`` returns the running loop's engine, creating it on first use. ``dispose_all()``
    closes every engine it can reach: the running loop's and those of loops still running in
    other threads directly, the rest by dropping their pools.
    """

    def __init__(self, factory: EngineFactory) -> None:
        self._factory = factory
        self._entries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Entry] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    async def get(self) -> AsyncEngine:
        """The engine of the running loop."""
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
        return entry.engine

    async def _dispose_at_shutdown(
        self, loop_ref: weakref.ref[asyncio.AbstractEventLoop], entry: _Entry
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            self._forget(loop_ref, entry)
            await entry.engine.dispose()

    def _forget(self, loop_ref: weakref.ref[asyncio.AbstractEventLoop], entry: _Entry) -> None:
        loop = loop_ref()
        with self._lock:
            if loop is not None and self._entries.get(loop) is entry:
                del self._entries[loop]

    def _drop_closed_loops(self) -> None:
        # A loop closed without shutting down its generators: its connections cannot be
        # awaited any more, so the pool is dropped and they close as they are collected.
        closed = [loop for loop in list(self._entries) if loop.is_closed()]
        for loop in closed:
            self._entries.pop(loop).engine.sync_engine.dispose(close=False)

    async def dispose_all(self) -> None:
        """Close every engine: each in its own loop where that loop still runs."""
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
                entry.engine.sync_engine.dispose(close=False)

    @staticmethod
    async def _close_entry(entry: _Entry) -> None:
        if entry.guard is not None:
            # Closing the guard disposes the engine and unregisters it from its loop.
            await entry.guard.aclose()
        else:
            await entry.engine.dispose()
