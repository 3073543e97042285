"""HistorySession against the SDK's Session protocol: limits, seq, turns, columns, JSON, corruption.

Every test runs on an SQLite file and on PostgreSQL (the ``store`` fixture).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

import pytest
from agents.memory import Session, SessionSettings
from agents.memory.session import _session_accepts_wrapper
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from history_store import HistorySession, HistoryStore, InvalidArgumentError, InvalidItemError
from history_store._items import dump_item


def message(role: str, content: str) -> dict[str, Any]:
    return {"role": role, "content": content}


async def sql(store: HistoryStore, statement: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = await store.engine()
    async with engine.begin() as connection:
        result = await connection.execute(text(statement), params)
        return [tuple(row) for row in result.all()] if result.returns_rows else []


async def item_rows(store: HistoryStore, session_id: str) -> list[tuple[Any, ...]]:
    return await sql(
        store,
        "SELECT seq, turn, role, item_type, text, item FROM hs_items "
        "WHERE session_id = :s ORDER BY seq",
        s=session_id,
    )


async def counters(store: HistoryStore, session_id: str) -> tuple[Any, ...] | None:
    rows = await sql(
        store,
        "SELECT last_seq, item_count, turn_count FROM hs_sessions WHERE session_id = :s",
        s=session_id,
    )
    return rows[0] if rows else None


async def test_implements_the_sdk_protocol(store: HistoryStore) -> None:
    session = store.session("proto")
    assert isinstance(session, Session)
    assert _session_accepts_wrapper(session) is True
    assert session.session_id == "proto"
    assert session.session_settings == SessionSettings()
    assert await session.get_items() == []
    assert await session.pop_item() is None
    await session.add_items([])
    # An empty batch writes nothing at all, not even the session row.
    assert await counters(store, "proto") is None
    await session.add_items([message("user", "a")], wrapper=None)
    assert await session.get_items(wrapper=None) == [message("user", "a")]
    assert await session.pop_item(wrapper=None) == message("user", "a")
    await session.clear_session(wrapper=None)
    assert await sql(store, "SELECT count(*) FROM hs_sessions") == [(0,)]


async def test_limit_semantics(store: HistoryStore) -> None:
    items = [message("user" if n % 2 == 0 else "assistant", f"m{n}") for n in range(5)]
    await store.session("lim").add_items(items)
    plain = store.session("lim")
    assert await plain.get_items() == items
    assert await plain.get_items(None) == items
    assert await plain.get_items(0) == []
    assert await plain.get_items(1) == items[-1:]
    assert await plain.get_items(3) == items[2:]
    assert await plain.get_items(5) == items
    assert await plain.get_items(50) == items
    with pytest.raises(InvalidArgumentError, match="limit"):
        await plain.get_items(-1)

    typed = store.session("lim", session_settings=SessionSettings(limit=2))
    assert typed.session_settings == SessionSettings(limit=2)
    assert await typed.get_items() == items[-2:]
    assert await typed.get_items(4) == items[-4:]
    assert await typed.get_items(0) == []

    from_dict = store.session("lim", session_settings={"limit": 3})
    assert from_dict.session_settings == SessionSettings(limit=3)
    assert await from_dict.get_items() == items[-3:]
    assert await from_dict.get_items(1) == items[-1:]


async def test_seq_is_monotonic_and_counters_follow(store: HistoryStore) -> None:
    session = store.session("seq")
    await session.add_items([message("user", "1"), message("assistant", "2")])
    await session.add_items([message("user", "3")])
    assert await counters(store, "seq") == (3, 3, 2)
    assert await session.pop_item() == message("user", "3")
    assert await counters(store, "seq") == (3, 2, 1)
    assert await session.pop_item() == message("assistant", "2")
    await session.add_items([message("assistant", "4"), message("user", "5")])
    rows = await item_rows(store, "seq")
    # seq 2 and 3 were popped and are never handed out again.
    assert [row[0] for row in rows] == [1, 4, 5]
    assert [row[1] for row in rows] == [1, 1, 2]
    assert await counters(store, "seq") == (5, 3, 2)
    assert await session.get_items() == [
        message("user", "1"),
        message("assistant", "4"),
        message("user", "5"),
    ]


async def test_turns_and_derived_columns(store: HistoryStore) -> None:
    items: list[dict[str, Any]] = [
        {"type": "message", "role": "system", "content": "be brief"},
        message("user", "hello"),
        {
            "type": "message",
            "role": "assistant",
            "id": "msg_1",
            "status": "completed",
            "content": [{"type": "output_text", "text": "hi", "annotations": []}],
        },
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"x": 1}'},
        {"type": "function_call_output", "call_id": "c1", "output": "42"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "again"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "why"}]},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
    ]
    session = store.session("cols")
    await session.add_items(items[:3])
    await session.add_items(items[3:])
    rows = await item_rows(store, "cols")
    assert [row[:5] for row in rows] == [
        (1, 0, "system", "message", "be brief"),
        (2, 1, "user", "message", "hello"),
        (3, 1, "assistant", "message", "hi"),
        (4, 1, None, "function_call", '{"x": 1}'),
        (5, 1, None, "function_call_output", "42"),
        (6, 2, "user", "message", "again"),
        (7, 2, None, "reasoning", "why"),
        (8, 2, "assistant", "message", "no"),
    ]
    assert await counters(store, "cols") == (8, 8, 2)
    assert await session.get_items() == items


async def test_json_round_trip_is_byte_stable(store: HistoryStore) -> None:
    items: list[dict[str, Any]] = [
        {"id": "__fake_id__", "type": "message", "role": "assistant", "content": "x"},
        {
            "type": "function_call",
            "call_id": "c",
            "name": "f",
            "arguments": "{}",
            "provider_data": {"model": "m", "nested": [1, 2.5, None, True, {"k": "v"}]},
        },
        {"role": "user", "content": 'h\u00e9llo \u4e16\u754c \U0001f600 "q" \\ \n\t'},
        {"role": "user", "content": "", "z": 1, "a": 2, "big": 2**62, "neg": -0.5e-9},
    ]
    session = store.session("json")
    await session.add_items(items)
    stored = [row[5] for row in await item_rows(store, "json")]
    assert stored == [dump_item(item) for item in items]
    assert stored[2] == json.dumps(items[2], ensure_ascii=False)
    # Key order survives, so the round trip is byte for byte.
    assert stored[3].startswith('{"role": "user", "content": "", "z": 1, "a": 2')
    read = await session.get_items()
    assert read == items
    assert [list(item) for item in read] == [list(item) for item in items]
    copy = store.session("json-copy")
    await copy.add_items(read)
    assert [row[5] for row in await item_rows(store, "json-copy")] == stored


async def test_invalid_item_stores_nothing(store: HistoryStore) -> None:
    session = store.session("bad")
    await session.add_items([message("user", "keep")])
    with pytest.raises(InvalidItemError, match="item 1"):
        await session.add_items([message("user", "a"), {"x": {1, 2}}])  # type: ignore[list-item]
    with pytest.raises(InvalidItemError, match="item 0"):
        await session.add_items([{"x": float("nan")}])  # type: ignore[list-item]
    assert await session.get_items() == [message("user", "keep")]
    assert await counters(store, "bad") == (1, 1, 1)


async def test_one_transaction_per_batch(store: HistoryStore) -> None:
    """A batch that fails part-way (its third row collides with a row planted at the seq it
    will take) leaves nothing behind: not its first rows, not its counters."""
    session = store.session("tx")
    await session.add_items([message("user", "warm-up")])
    engine = await store.engine()
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO hs_items (session_id, seq, turn, role, item_type, text, item, "
                "created_at) VALUES ('tx', 4, 1, 'user', 'message', NULL, '{}', :now)"
            ),
            {"now": datetime.now(timezone.utc)},
        )
    with pytest.raises(IntegrityError):
        await session.add_items([message("assistant", str(n)) for n in range(25)])
    assert await sql(store, "SELECT seq FROM hs_items WHERE session_id = 'tx' ORDER BY seq") == [
        (1,),
        (4,),
    ]
    assert await counters(store, "tx") == (1, 1, 1)
    # The failed write left its connection clean: the next one works.
    await session.add_items([message("user", "after")])
    assert await counters(store, "tx") == (2, 2, 2)


async def test_clear_session_only_touches_its_session(store: HistoryStore) -> None:
    first, second = store.session("c1"), store.session("c2")
    await first.add_items([message("user", "1"), message("assistant", "2")])
    await second.add_items([message("user", "other")])
    await first.clear_session()
    assert await first.get_items() == []
    assert await first.pop_item() is None
    assert await sql(store, "SELECT session_id, count(*) FROM hs_items GROUP BY session_id") == [
        ("c2", 1)
    ]
    assert await sql(store, "SELECT session_id FROM hs_sessions") == [("c2",)]
    await first.clear_session()  # clearing an empty session is fine
    await first.add_items([message("user", "again")])
    assert await first.get_items() == [message("user", "again")]


async def test_corrupt_rows_are_skipped_and_never_deleted(
    store: HistoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    session = store.session("rot")
    good = [message("user", str(n)) for n in range(1, 7)]
    await session.add_items(good)
    await sql(store, "UPDATE hs_items SET item = '{not json' WHERE seq = 2")
    await sql(store, """UPDATE hs_items SET item = '{"a": NaN}' WHERE seq = 5""")
    await sql(store, "UPDATE hs_items SET item = '[1, 2]' WHERE seq = 6")
    caplog.set_level(logging.WARNING, logger="history_store")

    assert await session.get_items() == [good[0], good[2], good[3]]
    warned = [r.getMessage() for r in caplog.records if r.name == "history_store"]
    assert len(warned) == 3
    for seq, line in zip((2, 5, 6), warned, strict=True):
        assert "'rot'" in line
        assert f"seq {seq}" in line
    # The limit counts good items: the window widens past the corrupt tail.
    assert await session.get_items(2) == [good[2], good[3]]
    assert await session.get_items(3) == [good[0], good[2], good[3]]

    caplog.clear()
    assert await session.pop_item() == good[3]
    assert any("seq 6" in r.getMessage() for r in caplog.records)
    assert await session.pop_item() == good[2]
    assert await session.pop_item() == good[0]
    assert await session.pop_item() is None
    assert [row[0] for row in await item_rows(store, "rot")] == [2, 5, 6]


async def test_from_url_owns_its_store(db_url: str) -> None:
    session = HistorySession.from_url("own", url=db_url, migrate="auto", session_settings={})
    assert session.session_settings == SessionSettings()
    await session.add_items([message("user", "x")])
    assert await session.get_items() == [message("user", "x")]
    await session.close()
    assert session.store.closed
    async with HistoryStore(db_url, migrate="check") as other:
        assert await other.session("own").get_items() == [message("user", "x")]


async def test_integers_past_64_bits_come_back_exact(store: HistoryStore) -> None:
    """Reads parse many rows at once with orjson, which would turn such integers into floats:
    they must take the exact path."""
    session = store.session("bigint")
    items = [
        {"role": "user", "content": "n", "n": 2**70},
        {"role": "assistant", "content": "m", "m": -(2**63) - 1, "s": "1" * 40},
        {"role": "user", "content": "small", "k": 2**62},
    ]
    await session.add_items(items)
    got = await session.get_items()
    assert got == items
    assert [type(item.get("n", item.get("m", item.get("k")))) for item in got] == [int] * 3
    assert await session.get_items(2) == items[1:]
