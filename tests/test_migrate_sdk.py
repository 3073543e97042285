"""Adopting the Agents SDK's SQL session stores, and exporting back to them.

Each store is filled through ``agents.Runner`` with the stub model, migrated, and the
conversation continued both ways: the model must receive the same request body from the SDK
session as from the migrated HistorySession.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, OpenAIChatCompletionsModel, Runner, SQLiteSession, function_tool
from agents.extensions.memory import AdvancedSQLiteSession, AsyncSQLiteSession, SQLAlchemySession
from openai import AsyncOpenAI

from history_store import HistoryStore, ImportFormatError, SessionExistsError
from history_store.testing import StubModelServer, ToolCall
from history_store.tools.sdk_export import export_to_sdk
from history_store.tools.sdk_import import METADATA_KEY, migrate_from_sdk

PROMPTS = ("What is the weather in Paris?", "Thanks. My name is Ada.", "héllo ✓ 🎉 again")
NEXT = "What is my name?"


def make_agent(client: AsyncOpenAI) -> Agent[Any]:
    @function_tool
    def weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    return Agent(
        name="assistant",
        instructions="Be brief.",
        model=OpenAIChatCompletionsModel("stub-model", client),
        tools=[weather],
    )


async def converse(agent: Agent[Any], session: Any, stub: StubModelServer) -> list[Any]:
    """Three turns, the first with a tool call; returns the Runner results."""
    stub.script(ToolCall("weather", '{"city": "Paris"}'))
    return [await Runner.run(agent, prompt, session=session) for prompt in PROMPTS]


async def next_request(agent: Agent[Any], session: Any, stub: StubModelServer) -> dict[str, Any]:
    await Runner.run(agent, NEXT, session=session)
    return stub.requests[-1].body


def sqlite_rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as connection:
        return connection.execute(query).fetchall()


@pytest.mark.parametrize("kind", ["SQLiteSession", "AsyncSQLiteSession"])
async def test_sqlite_session_adopted_in_place(
    tmp_path: Path, stub: StubModelServer, openai_client: AsyncOpenAI, kind: str
) -> None:
    path = tmp_path / "sdk.db"
    agent = make_agent(openai_client)
    sdk: Any = (
        SQLiteSession("conv", path) if kind == "SQLiteSession" else AsyncSQLiteSession("conv", path)
    )
    await converse(agent, sdk, stub)
    items = await sdk.get_items()
    sdk_rows = sqlite_rows(path, "SELECT * FROM agent_messages ORDER BY id")
    assert [item.get("type") for item in items].count("function_call") == 1

    report = await migrate_from_sdk(path)

    assert [(e.session_id, e.status, e.items, e.turns) for e in report.sessions] == [
        ("conv", "imported", len(items), 3)
    ]
    # The SDK's tables are only read.
    assert sqlite_rows(path, "SELECT * FROM agent_messages ORDER BY id") == sdk_rows
    async with HistoryStore(f"sqlite+aiosqlite:///{path}") as store:
        migrated = store.session("conv")
        assert await migrated.get_items() == items
        turns = sqlite_rows(path, "SELECT turn FROM hs_items ORDER BY seq")
        user_at = [i for i, item in enumerate(items) if item.get("role") == "user"]
        expected_turns = [sum(1 for u in user_at if u <= i) for i in range(len(items))]
        assert [t for (t,) in turns] == expected_turns
        body_sdk = await next_request(agent, sdk, stub)
        body_ours = await next_request(agent, migrated, stub)
    assert body_ours == body_sdk
    assert body_sdk["messages"][-1] == {"role": "user", "content": NEXT}
    # The instructions, every stored item as one Chat message, and the new input.
    assert len(body_sdk["messages"]) == 1 + len(items) + 1
    if kind == "AsyncSQLiteSession":
        await sdk.close()
    else:
        sdk.close()


async def test_sqlalchemy_session_on_postgres_in_place(
    pg_url: str, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    agent = make_agent(openai_client)
    sdk = SQLAlchemySession.from_url("pg-conv", url=pg_url, create_tables=True)
    await converse(agent, sdk, stub)
    items = await sdk.get_items()

    report = await migrate_from_sdk(pg_url, migrate="auto")

    assert [(e.session_id, e.status, e.items) for e in report.sessions] == [
        ("pg-conv", "imported", len(items))
    ]
    async with HistoryStore(pg_url) as store:
        migrated = store.session("pg-conv")
        assert await migrated.get_items() == items
        assert await next_request(agent, migrated, stub) == await next_request(agent, sdk, stub)
    await sdk.engine.dispose()


async def test_sqlalchemy_session_on_sqlite_moved_to_postgres(
    tmp_path: Path, pg_url: str, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sdk.db'}"
    agent = make_agent(openai_client)
    sdk = SQLAlchemySession.from_url("moved", url=url, create_tables=True)
    await converse(agent, sdk, stub)
    items = await sdk.get_items()

    report = await migrate_from_sdk(url, to=pg_url, migrate="auto", order="created_at")

    assert report.count("imported") == 1 and report.items == len(items)
    async with HistoryStore(pg_url) as store:
        migrated = store.session("moved")
        assert await migrated.get_items() == items
        assert await next_request(agent, migrated, stub) == await next_request(agent, sdk, stub)
    await sdk.engine.dispose()


async def test_advanced_session_branches_and_usage(
    tmp_path: Path, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    path = tmp_path / "advanced.db"
    agent = make_agent(openai_client)
    sdk = AdvancedSQLiteSession(session_id="adv", db_path=path, create_tables=True)
    stub.script(ToolCall("weather", '{"city": "Paris"}'))
    for prompt in PROMPTS:
        # Usage is recorded against the turn current when it is stored: one run at a time.
        await sdk.store_run_usage(await Runner.run(agent, prompt, session=sdk))
    # Branch from the second user turn and talk there: the branch shares turn 1's items.
    assert await sdk.create_branch_from_turn(2, "alt") == "alt"
    await sdk.store_run_usage(await Runner.run(agent, "On the branch now.", session=sdk))
    # The tokens the server reported per request: turn 1 took two (the tool call, the answer).
    totals = [r.usage.input_tokens + r.usage.output_tokens for r in stub.requests if r.usage]
    main_items = await sdk.get_items(branch_id="main")
    alt_items = await sdk.get_items(branch_id="alt")
    assert main_items != alt_items and alt_items[0] == main_items[0]

    report = await migrate_from_sdk(path)
    other = tmp_path / "alt.db"
    alt_report = await migrate_from_sdk(path, to=str(other), branch="alt")

    assert [(e.status, e.branch, e.items) for e in report.sessions] == [
        ("imported", "main", len(main_items))
    ]
    assert [(e.status, e.branch, e.items) for e in alt_report.sessions] == [
        ("imported", "alt", len(alt_items))
    ]
    async with HistoryStore(f"sqlite+aiosqlite:///{other}") as store:
        assert await store.session("adv").get_items() == alt_items
    (metadata,) = sqlite_rows(path, "SELECT metadata FROM hs_sessions")[0]
    origin = json.loads(metadata)[METADATA_KEY]
    assert origin["store"] == "AdvancedSQLiteSession"
    assert origin["branch"] == "main"
    assert [(b["branch_id"], b["items"], b["turns"]) for b in origin["branches"]] == [
        ("alt", len(alt_items), 2),
        ("main", len(main_items), 3),
    ]
    assert len(totals) == 5 and len(set(totals)) > 1  # counted per request, not a constant
    assert [(u["branch_id"], u["turn"], u["requests"], u["total_tokens"]) for u in
            origin["turn_usage"]] == [
        ("alt", 2, 1, totals[4]),
        ("main", 1, 2, totals[0] + totals[1]),
        ("main", 2, 1, totals[2]),
        ("main", 3, 1, totals[3]),
    ]  # fmt: skip
    # A new AdvancedSQLiteSession instance reads `main`: continue both ways.
    fresh = AdvancedSQLiteSession(session_id="adv", db_path=path)
    async with HistoryStore(f"sqlite+aiosqlite:///{path}") as store:
        migrated = store.session("adv")
        assert await migrated.get_items() == main_items
        assert await next_request(agent, migrated, stub) == await next_request(agent, fresh, stub)
    fresh.close()
    sdk.close()


async def test_custom_tables_dry_run_idempotent_and_unreadable_rows(tmp_path: Path) -> None:
    path = tmp_path / "custom.db"
    sdk = SQLiteSession("s1", path, sessions_table="conv_s", messages_table="conv_m")
    await sdk.add_items([{"role": "user", "content": "one"}, {"role": "assistant", "content": "1"}])
    await SQLiteSession("s2", path, sessions_table="conv_s", messages_table="conv_m").add_items(
        [{"role": "user", "content": "two"}]
    )
    with sqlite3.connect(path) as connection:
        connection.executemany(
            "INSERT INTO conv_m (session_id, message_data) VALUES (?, ?)",
            [("s1", "{not json"), ("s1", '"a bare string"'), ("", '{"role": "user"}')],
        )
    sdk_view = await sdk.get_items()
    destination = tmp_path / "dest.db"
    tables = {"sessions_table": "conv_s", "messages_table": "conv_m"}

    with pytest.raises(ImportFormatError, match="--messages-table"):
        await migrate_from_sdk(path, to=str(destination))
    dry = await migrate_from_sdk(path, to=str(destination), dry_run=True, **tables)

    assert not destination.exists()
    assert [(e.session_id, e.status, e.items, e.skipped_rows) for e in dry.sessions] == [
        ("", "invalid_id", 0, 0),
        ("s1", "would_import", 2, 2),
        ("s2", "would_import", 1, 0),
    ]
    first = await migrate_from_sdk(path, to=str(destination), **tables)
    again = await migrate_from_sdk(path, to=str(destination), **tables)

    assert [(e.session_id, e.status) for e in first.sessions] == [
        ("", "invalid_id"), ("s1", "imported"), ("s2", "imported")
    ]  # fmt: skip
    assert [(e.session_id, e.status) for e in again.sessions] == [
        ("", "invalid_id"), ("s1", "exists"), ("s2", "exists")
    ]  # fmt: skip
    assert sqlite_rows(destination, "SELECT session_id, seq, item FROM hs_items") == [
        ("s1", 1, '{"role": "user", "content": "one"}'),
        ("s1", 2, '{"role": "assistant", "content": "1"}'),
        ("s2", 1, '{"role": "user", "content": "two"}'),
    ]
    # The SDK skips the corrupt row but returns the bare string; we cannot store that one.
    assert sdk_view[-1] == "a bare string" and len(sdk_view) == 3
    with pytest.raises(SessionExistsError, match="'s1' already exists"):
        await migrate_from_sdk(path, to=str(destination), on_existing="error", **tables)
    sdk.close()


async def test_export_back_to_sdk_sqlite_and_postgres(
    tmp_path: Path, pg_url: str, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ours.db'}"
    agent = make_agent(openai_client)
    async with HistoryStore(url) as store:
        ours = store.session("back")
        await converse(agent, ours, stub)
        items = await ours.get_items()
        # A lone surrogate cannot reach the model, but its item must survive the export.
        odd_items = [{"role": "user", "content": "ünïcode \ud800 lone"}]
        await store.session("odd").add_items(odd_items)

        sdk_path = tmp_path / "sdk.db"
        report = await export_to_sdk(sdk_path, url=url)
        again = await export_to_sdk(sdk_path, url=url)
        pg_report = await export_to_sdk(pg_url, url=url, messages_table="m", sessions_table="s")

        assert (report.exported, report.items, again.exported, again.existing) == (
            ["back", "odd"], len(items) + 1, [], ["back", "odd"]
        )  # fmt: skip
        assert pg_report.exported == ["back", "odd"]
        assert await SQLiteSession("odd", sdk_path).get_items() == odd_items
        sdk = SQLiteSession("back", sdk_path)
        assert await sdk.get_items() == items
        on_pg = SQLAlchemySession.from_url(
            "back", url=pg_url, sessions_table="s", messages_table="m"
        )
        assert await on_pg.get_items() == items
        assert await next_request(agent, sdk, stub) == await next_request(agent, ours, stub)
        # What the SDK appended after the export reads back in order too.
        assert (await sdk.get_items())[len(items)] == {"role": "user", "content": NEXT}
        await on_pg.engine.dispose()
        sdk.close()
