"""100,000 items SQLite -> PostgreSQL -> SQLite: identical, with memory flat in history size.

The source is filled with one ``executemany`` into a migrated database (not 100k add_items
calls). Peak Python memory of each copy leg is measured with tracemalloc and printed (run
with ``-s`` to see it); the bound would fail if a copy held the history (or one 20k-item
session) in memory at once.
"""

from __future__ import annotations

import asyncio
import resource
import sqlite3
import tracemalloc
from collections.abc import Iterator
from datetime import datetime, timezone
from itertools import zip_longest
from pathlib import Path

from history_store import schema
from history_store._items import encode_items
from history_store.tools.copy import CopyReport, copy_database, session_digest

SESSIONS = 5
PER_SESSION = 20_000
# Loading every item at once would take far more than this (100k rows of ~500 bytes of
# JSON alone is ~50 MB; one 20k-item session's rows ~20 MB); a copy measured ~7 MiB.
PEAK_BOUND = 16 * 1024 * 1024


def _item(session: int, n: int) -> dict[str, object]:
    role = "user" if n % 4 == 0 else "assistant"
    filler = "ünïcödé ✓ lorem ipsum dolor sit amet " * 10
    return {"role": role, "content": f"s{session} item {n} {filler}", "n": n}


def _source_rows() -> Iterator[tuple[object, ...]]:
    when = datetime(2026, 1, 1, tzinfo=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    for session in range(SESSIONS):
        turn = 0
        for n in range(PER_SESSION):
            encoded = encode_items([_item(session, n)])[0]
            turn += encoded.starts_turn
            yield (f"session-{session}", n + 1, turn, encoded.role, encoded.item_type,
                   encoded.text, encoded.item_json, when)  # fmt: skip


def build_source(path: Path) -> None:
    asyncio.run(schema.upgrade(f"sqlite+aiosqlite:///{path}"))
    with sqlite3.connect(path) as connection:
        turns = PER_SESSION // 4
        connection.executemany(
            "INSERT INTO hs_sessions (session_id, created_at, updated_at, item_count, "
            "turn_count, last_seq) VALUES (?, '2026-01-01 00:00:00.000000', "
            "'2026-01-01 00:00:00.000000', ?, ?, ?)",
            [(f"session-{s}", PER_SESSION, turns, PER_SESSION) for s in range(SESSIONS)],
        )
        connection.executemany(
            "INSERT INTO hs_items (session_id, seq, turn, role, item_type, text, item, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            _source_rows(),
        )


def measured_copy(source: str, destination: str) -> tuple[CopyReport, int]:
    tracemalloc.start()
    try:
        report = asyncio.run(copy_database(source, destination, migrate="auto"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return report, peak


def test_100k_items_round_trip_with_flat_memory(tmp_path: Path, pg_url: str) -> None:
    first, last = tmp_path / "first.db", tmp_path / "last.db"
    build_source(first)
    first_url, last_url = f"sqlite+aiosqlite:///{first}", f"sqlite+aiosqlite:///{last}"

    to_pg, peak_to_pg = measured_copy(first_url, pg_url)
    back, peak_back = measured_copy(pg_url, last_url)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\ncopy of {to_pg.items_total} items: tracemalloc peak SQLite->PG "
        f"{peak_to_pg / 2**20:.1f} MiB, PG->SQLite {peak_back / 2**20:.1f} MiB; "
        f"process max RSS {rss_mb:.0f} MiB"
    )

    total = SESSIONS * PER_SESSION
    assert (to_pg.sessions, to_pg.items_copied, back.items_copied) == (SESSIONS, total, total)
    assert peak_to_pg < PEAK_BOUND and peak_back < PEAK_BOUND
    for session in range(SESSIONS):
        digests = {
            asyncio.run(session_digest(url, f"session-{session}"))
            for url in (first_url, pg_url, last_url)
        }
        assert len(digests) == 1 and digests.pop().count == PER_SESSION
    # Every item's JSON text, and every other column, compared row by row.
    query = "SELECT * FROM hs_items ORDER BY session_id, seq"
    with sqlite3.connect(first) as a, sqlite3.connect(last) as b:
        compared = 0
        for left, right in zip_longest(a.execute(query), b.execute(query)):
            assert left == right
            compared += 1
    assert compared == total
