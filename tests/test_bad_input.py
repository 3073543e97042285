"""Bad input: every odd item or session id round-trips exactly or is refused, by name.

A refusal is a ``HistoryStoreError`` whose message names the problem, and leaves every row
already stored exactly as it was (checked by snapshotting both tables).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from sqlalchemy import select

from history_store import (
    HistoryStore,
    HistoryStoreError,
    InvalidItemError,
    InvalidSessionIdError,
    tables,
)

_BEFORE = [
    {"role": "user", "content": "kept 1"},
    {"role": "assistant", "content": "kept 2", "type": "message"},
]


def _circular() -> dict[str, Any]:
    item: dict[str, Any] = {"role": "user"}
    item["self"] = item
    return item


def _nested(depth: int) -> dict[str, Any]:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return {"role": "user", "content": value}


REFUSED_ITEMS = [
    pytest.param({"content": object()}, "type object is not JSON serializable", id="object"),
    pytest.param({"content": {1, 2}}, "type set is not JSON serializable", id="set"),
    pytest.param({"content": b"raw"}, "type bytes is not JSON serializable", id="bytes"),
    pytest.param({"content": math.nan}, "Out of range float values", id="nan"),
    pytest.param({"content": -math.inf}, "Out of range float values", id="infinity"),
    pytest.param({"content": [1.0, {"x": math.nan}]}, "Out of range float values", id="deep-nan"),
    pytest.param({1: "a", "1": "b"}, "the int key 1 (keys must be str)", id="int-key"),
    pytest.param({"content": ("a", "b")}, "a tuple ('a', 'b') (use a list)", id="tuple"),
    pytest.param(_circular(), "Circular reference detected", id="circular"),
    pytest.param(_nested(100_000), "maximum recursion depth exceeded", id="deep-nesting"),
    pytest.param("just a string", "is a str, not a dict", id="not-a-dict"),
    pytest.param(["role", "user"], "is a list, not a dict", id="list"),
]

ROUND_TRIP_ITEMS = [
    pytest.param({"role": "user", "content": "lone \ud800 surrogate"}, id="lone-surrogate"),
    pytest.param({"role": "user", "content": "x", "k\udfff": "\udbff"}, id="surrogate-key"),
    pytest.param({"role": "user\x00", "content": "nul \x00 inside"}, id="nul"),
    pytest.param({"role": "user", "content": "\u202eRTL e\u0301 😀 日本語 \ufeff"}, id="unicode"),
    pytest.param({"role": "user", "content": "'; DROP TABLE hs_items; --"}, id="sql-text"),
    pytest.param({"n": 2**80, "f": -0.0, "e": 1e-308, "t": True, "z": None}, id="numbers"),
    pytest.param({"type": "function_call", "arguments": '{"a": "\\u0000"}'}, id="escaped"),
    pytest.param(_nested(400), id="nested-400"),
    pytest.param({}, id="empty"),
]


async def _snapshot(store: HistoryStore) -> tuple[list[Any], list[Any]]:
    engine = await store.engine()
    async with engine.connect() as connection:
        items = (
            await connection.execute(
                select(tables.items).order_by(tables.items.c.session_id, tables.items.c.seq)
            )
        ).all()
        sessions = (
            await connection.execute(select(tables.sessions).order_by(tables.sessions.c.session_id))
        ).all()
    return [tuple(row) for row in items], [tuple(row) for row in sessions]


async def _prepared(store: HistoryStore) -> tuple[list[Any], list[Any]]:
    await store.session("victim").add_items(list(_BEFORE))  # type: ignore[arg-type]
    await store.session("other").add_items([{"role": "user", "content": "other"}])
    return await _snapshot(store)


@pytest.mark.parametrize(("bad", "named"), REFUSED_ITEMS)
async def test_unstorable_item_is_refused_and_nothing_changes(
    store: HistoryStore, bad: Any, named: str
) -> None:
    before = await _prepared(store)
    good = {"role": "user", "content": "fine"}
    with pytest.raises(InvalidItemError) as raised:
        # The bad item is third: the two good ones before it must not be stored either.
        await store.session("victim").add_items([good, good, bad])
    assert named in str(raised.value)
    assert "item 2 " in str(raised.value)
    assert "nothing of this batch was stored" in str(raised.value) or "not a dict" in str(
        raised.value
    )
    assert await _snapshot(store) == before
    assert await store.session("victim").get_items() == _BEFORE


@pytest.mark.parametrize("item", ROUND_TRIP_ITEMS)
async def test_odd_item_round_trips_exactly(store: HistoryStore, item: dict[str, Any]) -> None:
    session = store.session("odd")
    await session.add_items([{"role": "user", "content": "first"}, item])  # type: ignore[list-item]
    got = await session.get_items()
    assert got == [{"role": "user", "content": "first"}, item]
    # Same key order, same int/float kinds, same sign of zero.
    assert json.dumps(got[1]) == json.dumps(item)
    assert await session.pop_item() == item


async def test_ten_megabyte_item_round_trips(store: HistoryStore) -> None:
    session = store.session("big")
    big = {"role": "user", "content": "ab😀" * (10 * 1024 * 1024 // 6)}
    assert len(json.dumps(big, ensure_ascii=False).encode()) >= 10 * 1024 * 1024
    await session.add_items([big, {"role": "assistant", "content": "small"}])  # type: ignore[list-item]
    assert await session.get_items(limit=1) == [{"role": "assistant", "content": "small"}]
    got = await session.get_items()
    assert len(got) == 2 and got[0] == big


REFUSED_IDS = [
    pytest.param("", "session_id is empty", id="empty"),
    pytest.param("x" * 10 * 1024, "is 10240 bytes long; the limit is 1024", id="10KB"),
    pytest.param("é" * 513, "is 1026 bytes long; the limit is 1024", id="1026-bytes"),
    pytest.param("a\x00b", "contains a NUL character", id="nul"),
    pytest.param("a\ud800b", "lone surrogate", id="lone-surrogate"),
    pytest.param(b"bytes", "must be a str, got bytes", id="bytes"),
    pytest.param(42, "must be a str, got int", id="int"),
]

ODD_IDS = [
    'it\'s "quoted" `x`',
    "'; DROP TABLE hs_items; --",
    "x' OR '1'='1",
    "Robert'); DELETE FROM hs_sessions; --",
    "100% _like_ \\escaped\\",
    "😀 日本語 العربية e\u0301",
    " ",
    "\n\t",
    "é" * 512,
    "x" * 1024,
]


@pytest.mark.parametrize(("bad", "named"), REFUSED_IDS)
async def test_bad_session_id_is_refused_and_nothing_changes(
    store: HistoryStore, bad: Any, named: str
) -> None:
    before = await _prepared(store)
    with pytest.raises(InvalidSessionIdError) as raised:
        store.session(bad)
    assert named in str(raised.value)
    assert isinstance(raised.value, HistoryStoreError)
    assert await _snapshot(store) == before


async def test_odd_session_ids_round_trip_and_stay_apart(store: HistoryStore) -> None:
    before_items, _ = await _prepared(store)
    for number, session_id in enumerate(ODD_IDS):
        await store.session(session_id).add_items([{"role": "user", "content": f"for id {number}"}])
    for number, session_id in enumerate(ODD_IDS):
        assert await store.session(session_id).get_items() == [
            {"role": "user", "content": f"for id {number}"}
        ]
    items, sessions = await _snapshot(store)
    assert sorted(row[0] for row in sessions) == sorted([*ODD_IDS, "victim", "other"])
    assert [row for row in items if row[0] in ("victim", "other")] == before_items
    await store.session(ODD_IDS[1]).clear_session()
    assert await store.session("victim").get_items() == _BEFORE
    assert len((await _snapshot(store))[1]) == len(ODD_IDS) + 1
