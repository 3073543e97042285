"""``copy_database``: SQLite -> PostgreSQL -> SQLite identical, resumable, verified."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from history_store import ConfigurationError, CopyConflictError, HistoryStore, SchemaOutOfDateError
from history_store.tools.copy import copy_database, session_digest

ODD_ITEM = {"role": "user", "content": "ünï ✓ 🎉 \u0000 \ud800", "provider_data": {"x": 1.5}}


def rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as connection:
        return connection.execute(query).fetchall()


ALL_SESSIONS = "SELECT * FROM hs_sessions ORDER BY session_id"
ALL_ITEMS = "SELECT * FROM hs_items ORDER BY session_id, seq"


async def fill(url: str, sessions: dict[str, int]) -> None:
    async with HistoryStore(url) as store:
        for session_id, count in sessions.items():
            session = store.session(session_id)
            for start in range(0, count, 50):
                batch = [
                    {"role": "user" if n % 3 == 0 else "assistant", "content": f"{session_id} {n}"}
                    for n in range(start, min(count, start + 50))
                ]
                await session.add_items(batch)


async def test_sqlite_to_postgres_to_sqlite_is_identical(tmp_path: Path, pg_url: str) -> None:
    first, last = tmp_path / "first.db", tmp_path / "last.db"
    first_url = f"sqlite+aiosqlite:///{first}"
    async with HistoryStore(first_url) as store:
        a = store.session("a")
        await a.add_items([{"role": "user", "content": "hi"}, ODD_ITEM])
        await a.add_items([{"role": "assistant", "content": "gone"}])
        assert await a.pop_item() == {"role": "assistant", "content": "gone"}  # a gap in seq
        await a.add_items(
            [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}]
        )
        await store.session("b ✓").add_items([{"role": "user", "content": "b"}])
    with sqlite3.connect(first) as connection:
        connection.execute(
            "UPDATE hs_sessions SET metadata = '{\"k\": [1, \"✓\"]}' WHERE session_id = 'a'"
        )

    to_pg = await copy_database(first_url, pg_url, migrate="auto", batch_size=2)
    back = await copy_database(pg_url, f"sqlite+aiosqlite:///{last}", batch_size=2)

    assert (to_pg.sessions, to_pg.copied, to_pg.items_copied) == (2, 2, 4)
    assert (back.sessions, back.copied, back.items_copied) == (2, 2, 4)
    assert rows(last, ALL_SESSIONS) == rows(first, ALL_SESSIONS)
    assert rows(last, ALL_ITEMS) == rows(first, ALL_ITEMS)
    assert [seq for (seq,) in rows(last, "SELECT seq FROM hs_items WHERE session_id='a'")] == [
        1, 2, 4
    ]  # fmt: skip
    urls = (first_url, pg_url, f"sqlite+aiosqlite:///{last}")
    for session_id, count in (("a", 3), ("b ✓", 1)):
        digests = {await session_digest(url, session_id) for url in urls}
        assert len(digests) == 1 and digests.pop().count == count
    async with HistoryStore(pg_url) as store:
        assert (await store.session("a").get_items())[1] == ODD_ITEM


class Interrupted(Exception):
    pass


async def test_interrupted_copy_resumes_where_it_stopped(tmp_path: Path) -> None:
    src = f"sqlite+aiosqlite:///{tmp_path / 'src.db'}"
    dst_path = tmp_path / "dst.db"
    dst = f"sqlite+aiosqlite:///{dst_path}"
    await fill(src, {"s1": 250, "s2": 250, "s3": 250})

    def stop_after_350(done: int, total: int | None) -> None:
        assert total == 750
        if done >= 350:
            raise Interrupted

    with pytest.raises(Interrupted):
        await copy_database(src, dst, batch_size=100, progress=stop_after_350)
    # The session being copied when it stopped was rolled back whole (issue 15.10): s1 is
    # complete, s2 absent, never half there with zero counters.
    assert rows(dst_path, "SELECT session_id, count(*) FROM hs_items GROUP BY 1 ORDER BY 1") == [
        ("s1", 250)
    ]  # fmt: skip
    assert rows(dst_path, "SELECT session_id, item_count FROM hs_sessions ORDER BY 1") == [
        ("s1", 250)
    ]  # fmt: skip

    report = await copy_database(src, dst, batch_size=100)

    assert (report.sessions, report.unchanged, report.resumed, report.copied) == (3, 1, 0, 2)
    assert (report.items_copied, report.items_total) == (500, 750)
    assert rows(dst_path, ALL_ITEMS) == rows(tmp_path / "src.db", ALL_ITEMS)
    assert rows(dst_path, ALL_SESSIONS) == rows(tmp_path / "src.db", ALL_SESSIONS)
    again = await copy_database(src, dst, batch_size=100)
    assert (again.unchanged, again.items_copied) == (3, 0)


async def test_a_grown_source_session_is_extended_not_copied_again(tmp_path: Path) -> None:
    src = f"sqlite+aiosqlite:///{tmp_path / 'src.db'}"
    dst_path = tmp_path / "dst.db"
    dst = f"sqlite+aiosqlite:///{dst_path}"
    await fill(src, {"s": 120})
    await copy_database(src, dst, batch_size=50)
    async with HistoryStore(src) as store:
        await store.session("s").add_items([{"role": "user", "content": "later"}])
    report = await copy_database(src, dst, batch_size=50)
    assert (report.resumed, report.items_copied, report.items_total) == (1, 1, 121)
    assert rows(dst_path, ALL_ITEMS) == rows(tmp_path / "src.db", ALL_ITEMS)
    assert rows(dst_path, ALL_SESSIONS) == rows(tmp_path / "src.db", ALL_SESSIONS)


async def test_conflicting_destination_is_refused(tmp_path: Path, pg_url: str) -> None:
    src = f"sqlite+aiosqlite:///{tmp_path / 'src.db'}"
    await fill(src, {"same": 5})
    async with HistoryStore(pg_url, migrate="auto") as store:
        await store.session("same").add_items([{"role": "user", "content": "different"}])

    with pytest.raises(CopyConflictError, match="'same' already exists in the destination"):
        await copy_database(src, pg_url)

    async with HistoryStore(pg_url) as store:
        assert await store.session("same").get_items() == [{"role": "user", "content": "different"}]
    with pytest.raises(ConfigurationError, match="same database"):
        await copy_database(src, src)


async def test_postgres_destination_must_be_at_head(tmp_path: Path, pg_url: str) -> None:
    src = f"sqlite+aiosqlite:///{tmp_path / 'src.db'}"
    await fill(src, {"s": 1})
    with pytest.raises(SchemaOutOfDateError) as caught:
        await copy_database(src, pg_url)
    assert caught.value.command.endswith("db upgrade")
