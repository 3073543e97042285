"""Every tool takes an open ``HistoryStore`` as well as a URL, and every long one reports
progress as ``(done, total)``."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from agents import SQLiteSession

from history_store import (
    HistoryStore,
    ReadOnlyQueryError,
    copy_database,
    delete,
    export,
    export_to_sdk,
    import_,
    migrate_from_sdk,
    prune,
    search,
    sessions,
    show,
    sql,
    stats,
)

ITEMS = [
    {"role": "user", "content": "hello there"},
    {"role": "assistant", "content": "hi"},
    {"role": "user", "content": "bye"},
    {"role": "assistant", "content": "see you"},
]


@pytest.fixture(params=["sqlite", "postgresql", "memory"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An SQLite file, the test PostgreSQL database, or an in-memory database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'h.db'}"
    if request.param == "memory":
        return "sqlite+aiosqlite://"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def filled(store_url: str) -> Any:
    """A store with two sessions."""
    url = store_url
    async with HistoryStore(url, migrate="auto") as store:
        await store.session("s1").add_items(ITEMS)
        await store.session("s2").add_items(ITEMS[:2])
        yield store


async def test_readers_take_an_open_store(filled: HistoryStore) -> None:
    page = await sessions(filled)
    assert [s.session_id for s in page.sessions] == ["s1", "s2"]
    assert [row.text for row in await show("s1", filled)] == [i["content"] for i in ITEMS]
    hits = await search("hello", filled)
    assert [(hit.session_id, hit.seq) for hit in hits] == [("s1", 1), ("s2", 1)]
    # The test's PostgreSQL store connects as the superuser: allowed here on purpose.
    counted = await sql("SELECT count(*) FROM hs_items", filled, unsafe_role=True)
    assert counted.rows == [(6,)]
    assert (await stats(filled)).items == 6
    out = io.StringIO()
    assert (await export(out, filled)).items == 6
    assert json.loads(out.getvalue().splitlines()[0])["format"] == "history_store.export"


async def test_sql_on_an_open_store_cannot_write(filled: HistoryStore) -> None:
    with pytest.raises(ReadOnlyQueryError, match="refused"):
        await sql("DELETE FROM hs_items", filled)
    assert (await stats(filled)).items == 6
    # The store's own connection writes as before once the query is done.
    await filled.session("s2").add_items([{"role": "user", "content": "more"}])
    assert len(await filled.session("s2").get_items()) == 3


async def test_writers_take_an_open_store_and_leave_it_open(
    filled: HistoryStore, tmp_path: Path
) -> None:
    path = tmp_path / "export.jsonl"
    with path.open("w", encoding="utf-8") as out:
        await export(out, filled, session_ids=["s2"])
    assert (await prune(filled, keep_last_turns=1)).items == 2
    assert (await delete(["s2"], filled)).sessions == 1
    assert (await import_(path, filled)).sessions == 1
    assert not filled.closed
    assert len(await filled.session("s2").get_items()) == 2


async def test_copy_and_sdk_moves_take_open_stores(sqlite_url: str, tmp_path: Path) -> None:
    async with (
        HistoryStore(sqlite_url) as source,
        HistoryStore(f"sqlite+aiosqlite:///{tmp_path / 'copy.db'}") as copy,
    ):
        await source.session("s1").add_items(ITEMS)
        assert (await copy_database(source, copy)).items_copied == 4
        assert await copy.session("s1").get_items() == ITEMS
        sdk_path = tmp_path / "sdk.db"
        assert (await export_to_sdk(sdk_path, url=source)).items == 4
        async with HistoryStore(f"sqlite+aiosqlite:///{tmp_path / 'back.db'}") as back:
            report = await migrate_from_sdk(sdk_path, to=back)
            assert report.items == 4
            assert await back.session("s1").get_items() == ITEMS
    assert await SQLiteSession("s1", str(sdk_path)).get_items() == ITEMS


async def test_long_operations_report_done_and_total(sqlite_url: str, tmp_path: Path) -> None:
    async with HistoryStore(sqlite_url) as store:
        for number in range(5):
            await store.session(f"s{number}").add_items(ITEMS * 30)
    calls: dict[str, list[tuple[int, int | None]]] = {"copy": [], "to_sdk": [], "from_sdk": []}
    sdk_path = tmp_path / "sdk.db"
    await copy_database(
        sqlite_url,
        f"sqlite+aiosqlite:///{tmp_path / 'copy.db'}",
        batch_size=50,
        progress=lambda done, total: calls["copy"].append((done, total)),
    )
    await export_to_sdk(
        sdk_path,
        url=sqlite_url,
        batch_size=50,
        progress=lambda done, total: calls["to_sdk"].append((done, total)),
    )
    await migrate_from_sdk(
        sdk_path,
        to=f"sqlite+aiosqlite:///{tmp_path / 'back.db'}",
        batch_size=50,
        progress=lambda done, total: calls["from_sdk"].append((done, total)),
    )
    for name, seen in calls.items():
        assert seen, name
        dones = [done for done, _ in seen]
        assert dones == sorted(dones) and len(set(dones)) == len(dones), name
        assert {total for _, total in seen} == {600}, name
        assert seen[-1] == (600, 600), name
