"""Durability is a choice, and the WAL stays bounded (issue 15, "Also")."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from history_store import ConfigurationError, HistoryStore
from history_store._engine import JOURNAL_SIZE_LIMIT


async def _synchronous(store: HistoryStore) -> tuple[int, int]:
    """PRAGMA synchronous on the store's engine and on its session backend's connection
    (0 OFF, 1 NORMAL, 2 FULL)."""
    engine = await store.engine()
    async with engine.connect() as connection:
        (engine_value,) = (await connection.exec_driver_sql("PRAGMA synchronous")).one()
    backend: Any = await store.backend()
    (backend_value,) = backend._connection().execute("PRAGMA synchronous").fetchone()
    return engine_value, backend_value


@pytest.mark.parametrize(
    ("url_query", "durability", "expected"),
    [("", None, 1), ("", "normal", 1), ("", "full", 2), ("?synchronous=full", None, 2)],
)
async def test_durability_is_a_choice(
    tmp_path: Path, url_query: str, durability: Any, expected: int
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'h.db'}{url_query}"
    async with HistoryStore(url, durability=durability) as store:
        await store.session("s").add_items([{"role": "user", "content": "x"}])
        assert await _synchronous(store) == (expected, expected)
        assert "synchronous" not in str((await store.engine()).url)  # not passed to the driver


def test_an_unknown_durability_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="synchronous must be 'normal' or 'full'"):
        HistoryStore(f"sqlite:///{tmp_path / 'h.db'}", durability="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        HistoryStore(f"sqlite:///{tmp_path / 'h.db'}?synchronous=off")


async def test_the_wal_stays_bounded_by_size_not_only_by_count(tmp_path: Path) -> None:
    """Sixty 1 MB items in sixty writes: far fewer writes than the count cadence, 60 MB."""
    path = tmp_path / "h.db"
    wal = Path(f"{path}-wal")
    largest = 0
    async with HistoryStore(f"sqlite+aiosqlite:///{path}") as store:
        session = store.session("big")
        for n in range(60):
            await session.add_items([{"role": "user", "content": f"{n} " + "x" * 1_000_000}])
            largest = max(largest, wal.stat().st_size if wal.exists() else 0)
        assert len(await session.get_items()) == 60
    print(f"\nlargest WAL while writing 60 MB: {largest / 2**20:.1f} MiB")
    assert largest < JOURNAL_SIZE_LIMIT
    assert not wal.exists() or os.path.getsize(wal) <= JOURNAL_SIZE_LIMIT
