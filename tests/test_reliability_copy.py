"""An interrupted ``copy`` never leaves a session half there (issue 15.10)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_copy import fill

from history_store import HistoryStore
from history_store.tools.copy import copy_database, session_digest


class Interrupted(Exception):
    pass


async def test_interrupted_copy_leaves_no_half_session_for_readers_or_writers(
    db_url: str, tmp_path: Path
) -> None:
    src = f"sqlite+aiosqlite:///{tmp_path / 'src.db'}"
    await fill(src, {"big": 1000})
    seen_by_reader: list[int] = []

    async def read_while_copying() -> None:
        async with HistoryStore(db_url, migrate="auto") as reader:
            for _ in range(50):
                seen_by_reader.append(len(await reader.session("big").get_items()))
                await asyncio.sleep(0)

    def stop_at_200(done: int, total: int | None) -> None:
        if done >= 200:
            raise Interrupted

    async with HistoryStore(db_url, migrate="auto") as store:
        await store.engine()  # the destination's schema, as `db upgrade` would
    reading = asyncio.ensure_future(read_while_copying())
    with pytest.raises(Interrupted):
        await copy_database(src, db_url, batch_size=100, progress=stop_at_200)
    await reading
    assert set(seen_by_reader) <= {0, 1000}

    async with HistoryStore(db_url) as store:
        session = store.session("big")
        assert await session.get_items() == []  # not 200 of 1,000
    report = await copy_database(src, db_url, batch_size=100)
    assert (report.copied, report.items_copied) == (1, 1000)
    assert await session_digest(db_url, "big") == await session_digest(src, "big")
    async with HistoryStore(db_url) as store:
        session = store.session("big")
        await session.add_items([{"role": "user", "content": "after the copy"}])
        items = await session.get_items()
    assert len(items) == 1001 and items[-1] == {"role": "user", "content": "after the copy"}
