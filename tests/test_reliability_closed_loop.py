"""Writes queued by an event loop that closed fail fast, are logged, and never hold up the
interpreter's exit beyond one busy timeout (issue 15.7)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from history_store import HistoryStore
from history_store._engine import sqlite_busy_timeout

HELPER = Path(__file__).parent / "helpers" / "abandoned_writes.py"


def test_writes_of_a_closed_loop_fail_fast_and_are_logged(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    url = f"sqlite+aiosqlite:///{path}"

    async def create() -> None:
        async with HistoryStore(url) as store:
            await store.engine()

    asyncio.run(create())
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write lock, held throughout
    try:
        process = subprocess.Popen(
            [sys.executable, str(HELPER), url, "4"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        marker = process.stdout.readline()
        assert marker.startswith("closed "), process.communicate()
        closed_at = float(marker.split()[1])
        _, err = process.communicate(timeout=120)
        exited_after = time.monotonic() - closed_at
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # The write under way when the loop closed gives up after its busy timeout; the three
    # queued behind it fail at once (before: up to ~45 s each, one after another).
    assert exited_after < sqlite_busy_timeout() + 3, exited_after
    assert err.count("StoreClosedError: add_items for session") == 4, err
    assert "the event loop that asked for it closed before the write could run" in err
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT count(*) FROM hs_items").fetchone() == (0,)
