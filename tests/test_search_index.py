"""SQLite's search index: rows queued by a trigger, indexed in bulk, never missed by search."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from history_store import HistoryStore, search
from history_store.backends.sqlite_fts import FLUSH_EVERY_ROWS, matches, words


def _counts(path: Path, word: str) -> tuple[int, int]:
    """(rows queued, indexed rows matching ``word``)."""
    with sqlite3.connect(path) as connection:
        queued = connection.execute("SELECT count(*) FROM hs_items_fts_pending").fetchone()[0]
        indexed = connection.execute(
            "SELECT count(*) FROM hs_items_fts WHERE hs_items_fts MATCH ?", (word,)
        ).fetchone()[0]
    return queued, indexed


async def test_rows_are_indexed_in_bulk_and_at_close(tmp_path: Path) -> None:
    path = tmp_path / "search.db"
    url = f"sqlite+aiosqlite:///{path}"
    store = HistoryStore(url)
    session = store.session("s")
    total = FLUSH_EVERY_ROWS + 10
    for n in range(total):
        await session.add_items([{"role": "user", "content": f"zebra number {n}"}])
    queued, indexed = _counts(path, "zebra")
    assert (queued, indexed) == (10, FLUSH_EVERY_ROWS)
    # Queued rows are found too, in seq order with the indexed ones.
    hits = await search("zebra", url, limit=total + 1)
    assert [hit.seq for hit in hits] == list(range(1, total + 1))
    await store.close()
    assert _counts(path, "zebra") == (0, total)


async def test_deleting_rows_keeps_index_and_queue_right(tmp_path: Path) -> None:
    path = tmp_path / "search.db"
    url = f"sqlite+aiosqlite:///{path}"
    async with HistoryStore(url) as store:
        session = store.session("s")
        await session.add_items([{"role": "user", "content": "okapi one"}])
    assert _counts(path, "okapi") == (0, 1)  # indexed at close
    async with HistoryStore(url) as store:
        session = store.session("s")
        await session.add_items([{"role": "user", "content": "okapi two"}])
        assert _counts(path, "okapi") == (1, 1)
        await session.pop_item()  # a queued row: leaves the queue
        assert _counts(path, "okapi") == (0, 1)
        await session.pop_item()  # an indexed row: leaves the index
        assert _counts(path, "okapi") == (0, 0)
        assert await search("okapi", url) == []
        # The freed rowid is taken again by a new row: it is queued, not mistaken as indexed.
        await session.add_items([{"role": "user", "content": "okapi three"}])
        assert [hit.text for hit in await search("okapi", url)] == ["okapi three"]


def test_queued_rows_match_like_fts5() -> None:
    assert words("Ça-va? NAÏVE café_42") == ["ca", "va", "naive", "cafe", "42"]
    assert matches(words("naive CAFE"), "Ça va, naïve café")
    assert not matches(words("naive tea"), "Ça va, naïve café")
