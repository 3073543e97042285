"""Crash safety: writers killed with SIGKILL at random points never corrupt history.

One fork server (``tests/helpers/crash_writer.py``) forks a writer per round; each writer
appends batches of 1-5 items to one SQLite session and is killed with SIGKILL 5-100 ms after
its engine is open. After every kill the file must pass ``PRAGMA integrity_check`` and hold
exactly the batches ``0..B-1`` whole and in order, with every batch the writer acknowledged.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from helpers.crash_writer import batch

from history_store import HistoryStore

KILLS = 60
SESSION = "crash"
WRITER = Path(__file__).parent / "helpers" / "crash_writer.py"


def _whole_batches(path: Path) -> int:
    """Check the file after a kill; return how many whole batches it holds."""
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
        rows = connection.execute(
            "SELECT seq, turn, item FROM hs_items WHERE session_id = ? ORDER BY seq", (SESSION,)
        ).fetchall()
        counters = connection.execute(
            "SELECT item_count, turn_count, last_seq FROM hs_sessions WHERE session_id = ?",
            (SESSION,),
        ).fetchall()
    finally:
        connection.close()
    expected: list[dict[str, Any]] = []
    batches = 0
    while len(expected) < len(rows):
        expected += batch(batches)
        batches += 1
    # A torn batch would leave len(rows) between two batch boundaries.
    assert [json.loads(item) for _, _, item in rows] == expected
    assert [seq for seq, _, _ in rows] == list(range(1, len(rows) + 1))
    assert [turn for _, turn, _ in rows] == [item["b"] + 1 for item in expected]
    if rows:
        assert counters == [(len(rows), batches, len(rows))]
    return batches


def _read_until(stream: Any, prefix: str) -> tuple[str, list[str]]:
    seen = []
    while True:
        line = stream.readline()
        assert line, f"fork server ended early after {seen!r}"
        line = line.strip()
        if line.startswith(prefix):
            return line, seen
        seen.append(line)


async def test_sigkill_at_random_points_leaves_whole_batches_in_order(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    url = f"sqlite+aiosqlite:///{path}"
    async with HistoryStore(url) as store:
        await store.engine()  # schema created before any writer starts
    rng = random.Random(7)
    server = subprocess.Popen(
        [sys.executable, str(WRITER), url, SESSION],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert server.stdin is not None and server.stdout is not None and server.stderr is not None
    batches = 0
    lost_acknowledged = []
    try:
        for _ in range(KILLS):
            server.stdin.write(f"fork {batches}\n")
            server.stdin.flush()
            ready, _ = _read_until(server.stdout, "ready ")
            pid = int(ready.split()[1])
            time.sleep(rng.uniform(0.005, 0.1))
            os.kill(pid, signal.SIGKILL)
            ended, lines = _read_until(server.stdout, f"exit {pid} ")
            assert ended == f"exit {pid} -9", server.stderr.read()
            acknowledged = [int(line.split()[1]) for line in lines if line.startswith("ok ")]
            assert acknowledged == list(range(batches, batches + len(acknowledged)))
            found = _whole_batches(path)
            # Committed before the kill means stored: a killed process loses no commit.
            if acknowledged and found <= acknowledged[-1]:
                lost_acknowledged.append((acknowledged[-1], found))
            assert found >= batches
            batches = found
    finally:
        server.stdin.close()
        server.wait(timeout=30)
        server.stdout.close()
        server.stderr.close()
    assert lost_acknowledged == []
    # Most rounds must have been killed mid-stream, not before the first write.
    print(f"crash test: {KILLS} kills, {batches} whole batches")
    assert batches > KILLS
    async with HistoryStore(url) as store:
        items = await store.session(SESSION).get_items()
    assert items == [item for k in range(batches) for item in batch(k)]
