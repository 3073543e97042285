"""Load: many processes writing one database at once, and many sessions open in one store.

8 processes x 500 batches (``tests/helpers/concurrent_writers.py``) on one SQLite file and
on PostgreSQL must end with exact totals, each writer's batches whole and in its order, and no
error surfaced to any writer (lock contention is absorbed by busy_timeout and retries).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.concurrent_writers import batch
from sqlalchemy import select

from history_store import HistoryStore, tables

PROCESSES = 8
BATCHES = 500
WRITERS = Path(__file__).parent / "helpers" / "concurrent_writers.py"


async def _seqs_and_counters(store: HistoryStore, session_id: str) -> tuple[list[int], tuple]:
    engine = await store.engine()
    async with engine.connect() as connection:
        seqs = (
            await connection.execute(
                select(tables.items.c.seq)
                .where(tables.items.c.session_id == session_id)
                .order_by(tables.items.c.seq)
            )
        ).scalars()
        counters = (
            await connection.execute(
                select(
                    tables.sessions.c.item_count,
                    tables.sessions.c.turn_count,
                    tables.sessions.c.last_seq,
                ).where(tables.sessions.c.session_id == session_id)
            )
        ).one()
    return list(seqs), tuple(counters)


async def test_eight_processes_writing_at_once_lose_and_reorder_nothing(db_url: str) -> None:
    async with HistoryStore(db_url, migrate="auto") as store:
        await store.engine()  # schema in place before the writers race
    writers = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WRITERS),
        db_url,
        str(PROCESSES),
        str(BATCHES),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, stderr = await writers.communicate()
    assert (writers.returncode, stderr.decode()) == (0, "")

    async with HistoryStore(db_url) as store:
        shared = await store.session("shared").get_items()
        assert len(shared) == PROCESSES * (BATCHES // 2) * 2
        for writer in range(PROCESSES):
            mine = [item for item in shared if item["w"] == writer]
            expected = [item for n in range(0, BATCHES, 2) for item in batch(writer, n)[1]]
            assert mine == expected
            own = await store.session(f"own-{writer}").get_items()
            assert own == [item for n in range(1, BATCHES, 2) for item in batch(writer, n)[1]]
            seqs, counters = await _seqs_and_counters(store, f"own-{writer}")
            assert seqs == list(range(1, BATCHES + 1))
            assert counters == (BATCHES, BATCHES // 2, BATCHES)
        # Each batch is one transaction with one seq range: its two items are adjacent.
        for first, second in zip(shared[::2], shared[1::2], strict=True):
            assert (first["w"], first["b"], first["i"]) == (second["w"], second["b"], 0)
            assert second["i"] == 1
        seqs, counters = await _seqs_and_counters(store, "shared")
        assert seqs == list(range(1, len(shared) + 1))
        assert counters == (len(shared), len(shared) // 2, len(shared))


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
async def test_a_thousand_open_sessions_share_a_bounded_pool(db_url: str) -> None:
    async with HistoryStore(db_url, migrate="auto") as store:
        await store.session("warm-up").add_items([{"role": "user", "content": "x"}])
        before = _open_fds()
        sessions = [store.session(f"s{n}") for n in range(1000)]

        async def use(n: int) -> list[object]:
            await sessions[n].add_items([{"role": "user", "content": f"hello {n}"}])
            return await sessions[n].get_items()  # type: ignore[return-value]

        # All at once: they queue for the store's one pool instead of opening connections.
        results = await asyncio.gather(*(use(n) for n in range(1000)))
        after = _open_fds()
        assert results == [[{"role": "user", "content": f"hello {n}"}] for n in range(1000)]
    closed = _open_fds()
    print(f"fds: before={before} after={after} closed={closed} ({store.dialect})")
    # The pool holds at most 32 connections (SQLite: file, -wal and -shm each), and closing
    # the store closes them all (`before` counted the warm-up connection).
    assert after - before <= 32 * 3
    assert closed < before
    assert len(sessions) == 1000
