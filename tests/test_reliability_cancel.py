"""Cancellation: a task cancelled in the middle of ``add_items`` stores the whole batch or
nothing, and the store stays usable (no connection left checked out or mid-transaction)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from history_store import HistorySession, HistoryStore, tables

ROUNDS = 60
BATCH = 300


def _batch(k: int) -> list[dict[str, object]]:
    return [
        {"role": "user" if i == 0 else "assistant", "content": f"{k}:{i}"} for i in range(BATCH)
    ]


async def _checked_out(store: HistoryStore) -> int:
    engine = await store.engine()
    return engine.sync_engine.pool.checkedout()  # type: ignore[attr-defined, no-any-return]


async def _cancel_after(session: HistorySession, k: int, steps: int, *, twice: bool) -> bool:
    """Start batch ``k``, cancel it after ``steps`` loop iterations; True if it was cancelled."""
    task = asyncio.create_task(session.add_items(_batch(k)))  # type: ignore[arg-type]
    for _ in range(steps):
        await asyncio.sleep(0)
    task.cancel()
    if twice:
        await asyncio.sleep(0)
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return True
    return False


async def test_cancelled_add_items_stores_whole_batch_or_nothing(db_url: str) -> None:
    async with HistoryStore(db_url, migrate="auto") as store:
        session = store.session("cancel")
        await session.add_items([{"role": "user", "content": "before"}])
        completed = set()
        cancelled = 0
        unstarted = {k for k in range(ROUNDS) if k * 3 % 50 == 0}
        for k in range(ROUNDS):
            # Step counts spread over connect, BEGIN, the upsert, the insert and COMMIT. On an
            # SQLite file a write whose lock is free completes without yielding to the loop,
            # so only a cancel that comes before it starts can interrupt it.
            if await _cancel_after(session, k, steps=k * 3 % 50, twice=k % 4 == 0):
                cancelled += 1
            else:
                completed.add(k)
        items = await session.get_items()
        assert items[0] == {"role": "user", "content": "before"}
        present = []
        position = 1
        while position < len(items):
            k = int(str(items[position]["content"]).split(":")[0])
            assert items[position : position + BATCH] == _batch(k), f"batch {k} is torn"
            present.append(k)
            position += BATCH
        assert present == sorted(set(present))
        # Every write that completed is stored whole; a cancelled one whole or not at all;
        # one cancelled before it started (no step given to it) not at all.
        assert completed <= set(present)
        assert cancelled >= len(unstarted)
        assert not unstarted & set(present)
        engine = await store.engine()
        async with engine.connect() as connection:
            counters = (
                await connection.execute(
                    select(tables.sessions.c.item_count, tables.sessions.c.last_seq).where(
                        tables.sessions.c.session_id == "cancel"
                    )
                )
            ).one()
            rows = await connection.scalar(
                select(func.count()).where(tables.items.c.session_id == "cancel")
            )
        assert tuple(counters) == (len(items), len(items)) == (rows, rows)
        assert await _checked_out(store) == 0
        # The pool's connections are clean: the next write commits normally.
        await session.add_items([{"role": "user", "content": "after"}])
        assert (await session.get_items())[-1] == {"role": "user", "content": "after"}
        print(f"cancel: {ROUNDS} cancelled, {len(present)} whole batches kept ({store.dialect})")


async def test_timeout_while_waiting_for_the_lock_still_stores_whole(sqlite_url: str) -> None:
    """A write cancelled (by a timeout) while it waits for SQLite's write lock is finished,
    not torn: the caller gets TimeoutError, and the batch is stored whole once the lock frees.
    """
    async with HistoryStore(sqlite_url) as store, HistoryStore(sqlite_url) as other:
        session = store.session("timeout")
        await session.add_items([{"role": "user", "content": "kept"}])
        blocker_engine = await other.engine()
        async with blocker_engine.connect() as blocker:
            await blocker.execution_options(history_store_begin="IMMEDIATE")
            await blocker.begin()

            async def release_later() -> None:
                # Scheduled after the timeout below, on the same loop: the timeout always
                # fires while the write is still waiting for the lock.
                await asyncio.sleep(0.5)
                await blocker.rollback()

            releaser = asyncio.create_task(release_later())
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await session.add_items(
                        [{"role": "user", "content": "late"}, {"role": "assistant", "content": "x"}]
                    )
            await releaser
        assert await session.get_items() == [
            {"role": "user", "content": "kept"},
            {"role": "user", "content": "late"},
            {"role": "assistant", "content": "x"},
        ]
        assert await _checked_out(store) == 0
