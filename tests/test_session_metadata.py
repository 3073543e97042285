"""Session metadata from the library: set on creation, read, merged in one transaction.

Every path stores the same values (``tests/test_history_paths.py`` runs the same script on
the three backends); here, what each promise means on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from history_store import HistorySession, HistoryStore, InvalidArgumentError
from history_store.backends.sqlite import SQLiteBackend

USER = {"role": "user", "content": "hi"}


async def stored_metadata(store: HistoryStore, session_id: str) -> Any:
    engine = await store.engine()
    async with engine.connect() as connection:
        value = await connection.scalar(
            text("SELECT CAST(metadata AS TEXT) FROM hs_sessions WHERE session_id = :id"),
            {"id": session_id},
        )
    return None if value is None else json.loads(value)


async def test_metadata_is_set_when_the_session_is_created(store: HistoryStore) -> None:
    session = store.session("user-42", metadata={"user": "ada", "tenant": "acme"})
    assert await session.get_metadata() is None  # no row yet
    await session.add_items([USER])
    assert await session.get_metadata() == {"user": "ada", "tenant": "acme"}
    # Another process opening the same session with other metadata changes nothing.
    later = store.session("user-42", metadata={"user": "someone else"})
    await later.add_items([USER])
    assert await stored_metadata(store, "user-42") == {"user": "ada", "tenant": "acme"}
    assert await store.session("untagged").get_metadata() is None
    await store.session("untagged").add_items([USER])
    assert await store.session("untagged").get_metadata() == {}


async def test_update_merges_keys(store: HistoryStore) -> None:
    session = store.session("s", metadata={"tier": "free", "seats": 1})
    await session.add_items([USER])
    merged = await session.update_metadata({"tier": "gold", "owner": {"name": "Zoë"}})
    assert merged == {"tier": "gold", "seats": 1, "owner": {"name": "Zoë"}}
    assert await stored_metadata(store, "s") == merged
    # A value is replaced whole, never merged into.
    assert await session.update_metadata({"owner": {"id": 7}}) == {
        "tier": "gold",
        "seats": 1,
        "owner": {"id": 7},
    }


async def test_concurrent_updates_lose_no_key(store: HistoryStore) -> None:
    await store.session("shared").add_items([USER])

    async def tag(number: int) -> None:
        await store.session("shared").update_metadata({f"key-{number}": number})

    await asyncio.gather(*(tag(number) for number in range(20)))
    assert await store.session("shared").get_metadata() == {
        f"key-{number}": number for number in range(20)
    }


async def test_updating_a_new_session_creates_it(store: HistoryStore) -> None:
    session = store.session("new", metadata={"source": "signup"})
    assert await session.update_metadata({"plan": "pro"}) == {"source": "signup", "plan": "pro"}
    assert await session.get_items() == []
    await session.add_items([USER])
    assert await session.get_metadata() == {"source": "signup", "plan": "pro"}


async def test_clearing_forgets_the_metadata_until_the_next_write(store: HistoryStore) -> None:
    session = store.session("c", metadata={"tenant": "acme"})
    await session.add_items([USER])
    await session.update_metadata({"extra": True})
    await session.clear_session()
    assert await session.get_metadata() is None
    await session.add_items([USER])
    assert await session.get_metadata() == {"tenant": "acme"}


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        (["not", "a", "dict"], "metadata must be a dict of JSON values, not a list"),
        ({"n": math.nan}, "metadata cannot be stored as JSON: Out of range float values"),
        ({"s": {1, 2}}, "metadata cannot be stored as JSON: Object of type set"),
        ({1: "one"}, "metadata holds the int key 1 (keys must be str)"),
        ({"t": (1, 2)}, "metadata holds a tuple (1, 2) (use a list)"),
        ({"bad": "\ud800"}, "metadata cannot be stored as JSON: 'utf-8' codec"),
    ],
)
async def test_bad_metadata_is_refused_and_nothing_changes(
    store: HistoryStore, metadata: Any, problem: str
) -> None:
    with pytest.raises(InvalidArgumentError, match="^" + re.escape(problem)):
        store.session("x", metadata=metadata)
    session = store.session("x", metadata={"ok": 1})
    await session.add_items([USER])
    with pytest.raises(InvalidArgumentError, match="^" + re.escape(problem)):
        await session.update_metadata(metadata)
    assert await session.get_metadata() == {"ok": 1}


async def test_metadata_that_is_not_an_object_is_named(store: HistoryStore) -> None:
    await store.session("odd").add_items([USER])
    engine = await store.engine()
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE hs_sessions SET metadata = :value WHERE session_id = 'odd'"),
            {"value": '["imported", "list"]'},
        )
    for call in (store.session("odd").get_metadata(), store.session("odd").update_metadata({})):
        with pytest.raises(InvalidArgumentError, match="is a JSON list, not an object"):
            await call
    assert await stored_metadata(store, "odd") == ["imported", "list"]


async def test_without_metadata_add_items_writes_once(tmp_path: Path) -> None:
    """The hot path costs nothing more without metadata: one write per add_items (the
    SQLite backend counts its writes); with metadata, one more for the first one only."""
    async with HistoryStore(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}") as store:
        backend = await store.backend()
        assert isinstance(backend, SQLiteBackend)

        async def writes(session: HistorySession, batches: int) -> int:
            before = backend._writes_since_checkpoint
            for _ in range(batches):
                await session.add_items([USER])
            return backend._writes_since_checkpoint - before

        assert await writes(store.session("plain"), 3) == 3
        assert await writes(store.session("tagged", metadata={"a": 1}), 3) == 4
