"""SQLite's full-text index stays whole while prune, delete and import race a live writer."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event

from history_store import HistoryStore, delete, export, import_, prune, search

HELPER = Path(__file__).parent / "helpers" / "steady_writer.py"


def fts_problems(path: Path) -> list[str]:
    """What FTS5's own integrity check and a recount find wrong with the index (empty: none)."""
    problems = []
    with sqlite3.connect(path) as connection:
        try:
            connection.execute(
                "INSERT INTO hs_items_fts (hs_items_fts, rank) VALUES ('integrity-check', 1)"
            )
        except sqlite3.DatabaseError as exc:
            problems.append(f"integrity-check: {exc}")
        texts = connection.execute("SELECT count(*) FROM hs_items WHERE text IS NOT NULL")
        indexed = connection.execute(
            "SELECT count(*) FROM hs_items_fts WHERE hs_items_fts MATCH 'steady'"
        )
        queued = connection.execute("SELECT count(*) FROM hs_items_fts_pending")
        counts = (texts.fetchone()[0], indexed.fetchone()[0] + queued.fetchone()[0])
        if counts[0] != counts[1]:
            problems.append(f"{counts[0]} rows with text, {counts[1]} indexed or queued")
    return problems


async def test_prune_delete_and_import_beside_a_writer_keep_the_index_whole(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.db"
    url = f"sqlite+aiosqlite:///{path}"
    backup = tmp_path / "backup.jsonl"
    async with HistoryStore(url) as store:
        for n in range(40):
            await store.session(f"old-{n}").add_items(
                [{"role": "user", "content": f"steady old {n}"}] * 3
            )
    await export(backup, url, session_ids=[f"old-{n}" for n in range(20)])
    stop = tmp_path / "stop"
    writers = [
        subprocess.Popen(
            [sys.executable, str(HELPER), url, str(stop), str(n)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    try:
        for writer in writers:
            assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
        deadline = time.monotonic() + 3
        rounds = 0
        while time.monotonic() < deadline:
            await prune(url, keep_last_turns=1)
            await delete([f"old-{rounds % 20}"], url)
            await import_(backup, url, on_conflict="replace")  # pruned since: restore
            rounds += 1
    finally:
        stop.touch()
        outs = [writer.communicate(timeout=60)[0] for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0]
    assert all(int(out) > 0 for out in outs)
    assert rounds >= 3
    assert fts_problems(path) == []
    # Once the last writer has closed (the queue indexed), the index alone holds every row.
    async with HistoryStore(url) as store:
        await store.session("w-0-0").add_items([{"role": "user", "content": "steady last"}])
    assert fts_problems(path) == []
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT count(*) FROM hs_items_fts_pending").fetchone() == (0,)


async def test_a_write_landing_inside_prunes_index_rebuild_is_indexed_once(
    tmp_path: Path,
) -> None:
    """The worst moment for a writer: just before prune rebuilds the index (after VACUUM,
    which renumbers rowids). A hook on prune's own engine starts a real write from another
    store at that moment; it must wait for the rebuild or be covered by it, never both."""
    path = tmp_path / "history.db"
    url = f"sqlite+aiosqlite:///{path}"
    async with HistoryStore(url) as store:
        session = store.session("old")
        for n in range(5):
            await session.add_items([{"role": "user", "content": f"steady turn {n}"}])
    writes: list[threading.Thread] = []
    pruned = threading.Event()

    async def write() -> None:
        # Another store on its own event loop (prune's loop is busy inside the hook), kept
        # open until prune is done: its queued row is indexed when it closes.
        async with HistoryStore(url) as other:
            await other.session("racer").add_items(
                [{"role": "user", "content": "steady racing write"}]
            )
            await asyncio.to_thread(pruned.wait, 30)

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "'rebuild'" in statement and not writes:
            thread = threading.Thread(target=asyncio.run, args=(write(),))
            writes.append(thread)
            thread.start()
            thread.join(0.5)  # long enough for a write whose lock is free to finish

    async with HistoryStore(url) as pruning:
        engine = await pruning.engine()
        event.listen(engine.sync_engine, "before_cursor_execute", before)
        result = await prune(pruning, keep_last_turns=2)
    pruned.set()
    assert result.items == 3 and len(writes) == 1
    await asyncio.to_thread(writes[0].join, 30)
    assert fts_problems(path) == []
    hits = await search("racing", url)
    assert [(hit.session_id, hit.text) for hit in hits] == [("racer", "steady racing write")]
