"""A PostgreSQL store keeps to its pool however many first calls arrive at once, and an
unclosed store says so when it is collected (issue 15, "Also")."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from conftest import _asyncpg_dsn

from history_store import HistoryStore
from history_store.backends.postgres import POOL_SIZE


async def _peak_connections(url: str, work: asyncio.Future[None]) -> int:
    """The most backends connected to the test database (other than this watcher) while
    ``work`` runs."""
    watcher = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    peak = 0
    try:
        while True:
            count = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            peak = max(peak, int(count))
            if work.done():
                return peak
            await asyncio.sleep(0.002)
    finally:
        await watcher.close()


async def test_fifty_concurrent_first_calls_stay_within_the_pool(pg_url: str) -> None:
    async with HistoryStore(pg_url, migrate="auto") as store:
        await store.engine()  # the schema, as a deploy's `db upgrade` would have
    store = HistoryStore(pg_url)
    try:

        async def first_call(number: int) -> None:
            session = store.session(f"s{number}")
            await session.add_items([{"role": "user", "content": f"hello {number}"}])
            await session.get_items()

        work = asyncio.ensure_future(asyncio.gather(*(first_call(n) for n in range(50))))
        peak = await _peak_connections(pg_url, work)
        await work
    finally:
        await store.close()
    assert peak <= POOL_SIZE, peak


FORGETFUL = """
import asyncio, gc, sys
from history_store import HistoryStore

async def use(close):
    store = HistoryStore("sqlite+aiosqlite:///" + sys.argv[1])
    await store.session("s").add_items([{"role": "user", "content": "x"}])
    if close:
        await store.close()

asyncio.run(use(close=sys.argv[2] == "close"))
gc.collect()
print("collected", flush=True)
"""


@pytest.mark.parametrize("closes", [False, True], ids=["unclosed", "closed"])
def test_an_unclosed_store_warns_when_collected(tmp_path: Path, closes: bool) -> None:
    # In a process of its own: what the forgotten store holds must not leak into other tests.
    done = subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", "-c", FORGETFUL,
         str(tmp_path / "h.db"), "close" if closes else "forget"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "collected\n"), done.stderr
    warned = "ResourceWarning: HistoryStore('sqlite+aiosqlite:///" in done.stderr
    assert warned != closes, done.stderr
    if not closes:
        assert "h.db') was never closed; close it with `await store.close()`" in done.stderr
