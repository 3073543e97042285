"""The three storage paths (``_history``) store and return the same things.

One script of session operations runs on in-memory SQLite (SQLAlchemy Core), an SQLite file
(stdlib driver) and PostgreSQL (asyncpg): every return value, every stored row and every
counter must be identical. Also: the PostgreSQL path's errors, retries and connections.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from history_store import (
    ConfigurationError,
    DatabaseUnavailableError,
    HistoryStore,
)
from history_store._engine import is_lock_error, resolve_url, retry_on_lock
from history_store.backends.base import TurnRecord
from history_store.backends.core import CoreBackend
from history_store.backends.postgres import (
    PostgresBackend,
    _as_sqlalchemy_error,
    asyncpg_connect_arguments,
)
from history_store.backends.sqlite import INLINE_READ_ROWS, SQLiteBackend


def _item(number: int) -> dict[str, Any]:
    kinds = [
        {"role": "user", "content": f"question {number}"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": f"answer {number}", "annotations": []}],
        },
        {"type": "function_call", "call_id": f"c{number}", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": f"c{number}", "output": "ok"},
    ]
    return kinds[number % len(kinds)]


async def _script(store: HistoryStore) -> tuple[list[Any], list[tuple[Any, ...]]]:
    """Session operations with every kind of result; returns (results, stored state)."""
    results: list[Any] = []
    first, second = store.session("first"), store.session("second")
    for start in range(0, 24, 3):
        await first.add_items([_item(n) for n in range(start, start + 3)])
    await second.add_items([_item(n) for n in range(5)])
    results.append(await first.get_items(limit=5))
    results.append(await first.get_items())
    results.append([await first.pop_item() for _ in range(6)])
    await second.clear_session()
    results.append(await second.pop_item())
    await second.add_items([_item(7)])
    results.append(await second.get_items())
    # Turn records: a failed turn's items are kept but no longer read back.
    backend = await store.backend()
    results.append(await backend.turn_of("first", 13))
    results.append(await backend.turn_of("first", 999))
    await backend.record_turns(
        "first",
        [TurnRecord(turn=3, status="completed", requests=1), TurnRecord(turn=4, status="failed")],
    )
    await backend.record_turns("first", [TurnRecord(turn=3, status="completed", agent="a")])
    await backend.record_turns("missing", [TurnRecord(turn=1, status="failed")])
    results.append(await first.get_items())
    results.append(await first.get_items(limit=3))
    results += await _metadata_script(store)
    engine = await store.engine()
    async with engine.connect() as connection:
        items = await connection.execute(
            text(
                "SELECT session_id, seq, turn, role, item_type, text, item FROM hs_items "
                "ORDER BY session_id, seq"
            )
        )
        sessions = await connection.execute(
            text(
                "SELECT session_id, last_seq, item_count, turn_count, "
                "CAST(metadata AS TEXT) FROM hs_sessions ORDER BY session_id"
            )
        )
        turns = await connection.execute(
            text(
                "SELECT session_id, turn, status, agent, requests FROM hs_turns "
                "ORDER BY session_id, turn"
            )
        )
        state = [
            *(tuple(row) for row in items.all()),
            *(tuple(row) for row in sessions.all()),
            *(tuple(row) for row in turns.all()),
        ]
    return results, state


async def _metadata_script(store: HistoryStore) -> list[Any]:
    """Metadata set on creation, merged, read; on new and existing sessions."""
    tagged = store.session("tagged", metadata={"tenant": "acme", "tags": ["ü", 1.5]})
    results = [await tagged.get_metadata()]  # not created yet
    await tagged.add_items([_item(0)])
    results.append(await tagged.get_metadata())
    results.append(await tagged.update_metadata({"tenant": "globex", "seats": 3, "x": None}))
    # An existing session keeps its metadata: "ignored" is not set.
    await store.session("first", metadata={"ignored": True}).add_items([_item(1)])
    results.append(await store.session("first").get_metadata())
    results.append(await store.session("first").update_metadata({"tier": "gold"}))
    # Updating a session that does not exist creates it, with its creation metadata first.
    fresh = store.session("fresh", metadata={"from": "creation"})
    results.append(await fresh.update_metadata({"from": "update", "also": "kept"}))
    results.append(await store.session("fresh").get_items())
    return results


async def test_every_path_stores_and_returns_the_same(tmp_path: Path, pg_url: str) -> None:
    outcomes = {}
    paths = {
        "memory": ("sqlite+aiosqlite://", CoreBackend),
        "file": (f"sqlite+aiosqlite:///{tmp_path / 'h.db'}", SQLiteBackend),
        "postgresql": (pg_url, PostgresBackend),
    }
    for name, (url, path_class) in paths.items():
        async with HistoryStore(url, migrate="auto") as store:
            assert isinstance(await store.backend(), path_class)
            outcomes[name] = await _script(store)
    assert outcomes["memory"] == outcomes["file"] == outcomes["postgresql"]
    results, state = outcomes["file"]
    assert len(results[1]) == 24 and results[0] == results[1][-5:]
    assert results[2] == list(reversed(results[1][-6:]))
    assert results[3] is None
    assert results[9:] == [
        None,
        {"tenant": "acme", "tags": ["ü", 1.5]},
        {"tenant": "globex", "tags": ["ü", 1.5], "seats": 3, "x": None},
        {},
        {"tier": "gold"},
        {"from": "update", "also": "kept"},
        [],
    ]
    # Six user inputs (items 0, 4, ..., 20) made six turns; popping item 20 counted one out.
    assert results[5:7] == [4, None]
    assert ("first", 3, "completed", "a", 1) in state
    assert ("first", 4, "failed", None, None) in state
    # Turn 4 (items 12-15) is failed: kept in the table, left out of both reads.
    assert [item for item in results[7] if item in results[1][12:16]] == []
    assert len(results[7]) == len(results[1][:18]) - 4
    assert results[8] == results[7][-3:]
    assert ("first", 25, 19, 5, '{"tier": "gold"}') in state
    assert ("fresh", 0, 0, 0, '{"from": "update", "also": "kept"}') in state
    assert (
        "tagged",
        1,
        1,
        1,
        '{"tenant": "globex", "tags": ["ü", 1.5], "seats": 3, "x": null}',
    ) in state


async def test_deadlocks_and_serialization_failures_are_retried(pg_url: str) -> None:
    # As asyncpg raises them, and as the direct path passes them on (SQLAlchemy's errors).
    failures = [
        asyncpg.DeadlockDetectedError("deadlock"),
        _as_sqlalchemy_error(asyncpg.SerializationError("could not serialize access")),
    ]
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if failures:
            raise failures.pop(0)
        return "done"

    assert is_lock_error(asyncpg.DeadlockDetectedError("x"))
    assert not is_lock_error(asyncpg.UniqueViolationError("x"))
    assert await retry_on_lock(flaky, what="test", url=resolve_url(pg_url)) == "done"
    assert attempts == 3
    assert isinstance(_as_sqlalchemy_error(asyncpg.DeadlockDetectedError("d")), OperationalError)


async def test_unreachable_server_is_named_without_password() -> None:
    history = PostgresBackend(resolve_url("postgresql://me:s3cret@127.0.0.1:1/nowhere"))
    try:
        with pytest.raises(DatabaseUnavailableError) as raised:
            await history.read_all("x")
        message = str(raised.value)
        assert "postgresql+asyncpg://me:***@127.0.0.1:1/nowhere" in message
        assert "s3cret" not in message
    finally:
        await history.close()


def test_connection_arguments_follow_sqlalchemy() -> None:
    url = resolve_url(
        "postgresql://me:pw@db.example:6543/app?prepared_statement_cache_size=0&ssl=require"
    )
    assert asyncpg_connect_arguments(url) == {
        "host": "db.example",
        "port": 6543,
        "user": "me",
        "password": "pw",
        "database": "app",
        "statement_cache_size": 0,
        "ssl": "require",
    }


async def test_statement_cache_can_be_turned_off_for_pgbouncer(pg_url: str) -> None:
    url = f"{pg_url}?prepared_statement_cache_size=0"
    async with HistoryStore(url, migrate="auto") as store:
        history = await store.backend()
        assert isinstance(history, PostgresBackend)
        session = store.session("bouncer")
        await session.add_items([{"role": "user", "content": "hi"}])
        assert await session.get_items(limit=1) == [{"role": "user", "content": "hi"}]
        connections = await history._connections.get()
        async with connections.connection() as connection:
            assert connection._stmt_cache.get_max_size() == 0


async def test_a_loop_that_cannot_keep_a_pool_connects_per_use(pg_url: str) -> None:
    """``run_sync`` reuses a thread's loop after its shutdown: no pool there, so no idle
    connection is left behind (``_loop_resources``)."""
    async with HistoryStore(pg_url, migrate="auto") as store:
        await store.session("s").add_items([{"role": "user", "content": "hi"}])

        def in_a_reused_loop() -> list[Any]:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                return loop.run_until_complete(store.session("s").get_items())
            finally:
                loop.close()

        assert await asyncio.to_thread(in_a_reused_loop) == [{"role": "user", "content": "hi"}]


def test_postgresql_without_asyncpg_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "history_store.backends.postgres")
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'history-store\[postgres\]'"):
        HistoryStore("postgresql://u@h/db")


@pytest.mark.parametrize("extra", [0, 1])
async def test_full_reads_of_short_sessions_stay_on_the_callers_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: int
) -> None:
    """Up to INLINE_READ_ROWS items are read without a thread hop; one more goes to a
    worker thread. Either way every item comes back, in order."""
    count = INLINE_READ_ROWS + extra
    async with HistoryStore(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}") as store:
        session = store.session("s")
        await session.add_items([{"role": "user", "content": str(n)} for n in range(count)])
        hops: list[object] = []
        to_thread = asyncio.to_thread

        async def counting_to_thread(function: Any, /, *args: Any, **kwargs: Any) -> Any:
            hops.append(function)
            return await to_thread(function, *args, **kwargs)

        monkeypatch.setattr(asyncio, "to_thread", counting_to_thread)
        items = await session.get_items()
    assert [int(item["content"]) for item in items] == list(range(count))
    assert len(hops) == extra
