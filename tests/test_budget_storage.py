"""What the token budget stores, and that it survives migration, export/import and copy.

* revision 0004 on a database filled at revision 0003: every item gets its estimated tokens
  and its session's running total, ``hs_summaries`` and ``hs_context`` appear, and a
  downgrade takes exactly that away again;
* an export and its import keep each turn's status and the summaries, so the imported
  session's window (what its next request carries) is the original's;
* ``copy_database`` (SQLite -> SQLite, SQLite -> PostgreSQL) keeps ``hs_turns`` and
  ``hs_summaries`` row for row and the running totals consistent.

Conversations are real runs through ``history_store.Runner``, the ``openai`` client and the
SDK against the stub server (with a context limit, and a stub summarizer), on SQLite files
and the local PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from budget_support import agent_on, message, summarize_by_numbers, summarizer_on
from openai import APIStatusError
from sqlalchemy import MetaData, Table, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

import history_store
from history_store import ContextBudget, HistoryStore, Runner, schema, tables
from history_store._engine import make_engine, resolve_url
from history_store._items import encode_items
from history_store.budget.tokens import EstimateCounter
from history_store.testing import Failure, StubModelServer

WHEN = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=timezone.utc)
CONTEXT = 1024


def sqlite(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def query(url: str, statement: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = make_engine(resolve_url(url))
    try:
        async with engine.connect() as connection:
            return [tuple(row) for row in await connection.execute(text(statement), params)]
    finally:
        await engine.dispose()


def utc(value: Any) -> Any:
    """SQLite hands datetimes back naive (they were written as UTC), PostgreSQL aware."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def normalized(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [tuple(utc(value) for value in row) for row in rows]


# -- (a) revision 0004 over data of revision 0003 -------------------------------------------

ITEMS_0003: dict[str, list[dict[str, Any] | str]] = {
    # A plain conversation over three turns, with seq gaps (pop_item) between some rows.
    "plain": [
        {"role": "user", "content": "hello " * 40},
        {
            "role": "assistant",
            "content": [{"type": "output_text", "text": "hi", "annotations": []}],
        },
        {"role": "user", "content": "look order 7 up"},
        {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": '{"o": 7}'},
        {"type": "function_call_output", "call_id": "c1", "output": "shipped " * 30},
        {"role": "user", "content": "thanks"},
        {"role": "assistant", "content": "you are welcome"},
    ],
    # Rows a count must not trip over: an assistant item before any user input (turn 0), no
    # text, an image, a reasoning summary, unicode, JSON that is not an object, a corrupt row.
    "odd ✓ 🎉": [
        {"role": "assistant", "content": "welcome back"},
        {"role": "user", "content": []},
        {"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "z" * 1001}]},
        {"role": "assistant", "content": "ünïcödé ✓ 🎉 " * 9},
        "[1, 2, 3]",
        "{this is not json",
    ],
}
SEQS_0003 = {"plain": [1, 2, 4, 5, 6, 9, 10], "odd ✓ 🎉": [1, 2, 3, 4, 5, 6, 7]}
# The revision counts in pages of 5000 rows: one session runs over a page.
LONG_ITEMS = 5003
TURN_STATUSES_0003 = {("plain", 1): "completed", ("plain", 2): "failed", ("plain", 3): "completed"}


async def reflect(connection: AsyncConnection, *names: str) -> dict[str, Table]:
    def load(sync: Any) -> dict[str, Table]:
        metadata = MetaData()
        return {name: Table(name, metadata, autoload_with=sync) for name in names}

    return await connection.run_sync(load)


def item_row(session_id: str, seq: int, turn: int, item: dict[str, Any] | str) -> dict[str, Any]:
    if isinstance(item, str):  # stored text that is not an item: as a damaged row would be
        return {
            "session_id": session_id, "seq": seq, "turn": turn, "role": None,
            "item_type": "unknown", "text": None, "item": item, "created_at": WHEN,
        }  # fmt: skip
    (encoded,) = encode_items([item])
    return {
        "session_id": session_id, "seq": seq, "turn": turn, "role": encoded.role,
        "item_type": encoded.item_type, "text": encoded.text, "item": encoded.item_json,
        "created_at": WHEN,
    }  # fmt: skip


async def fill_at_0003(url: str) -> None:
    """Sessions, items and turn records written as revision 0003's tables take them."""
    engine = make_engine(resolve_url(url))
    try:
        async with engine.begin() as connection:
            found = await reflect(connection, "hs_sessions", "hs_items", "hs_turns")
            assert "tokens" not in found["hs_items"].c  # really revision 0003's table
            stored: dict[str, list[dict[str, Any]]] = {}
            for session_id, items in ITEMS_0003.items():
                rows, turn = [], 0
                for seq, item in zip(SEQS_0003[session_id], items, strict=True):
                    turn += isinstance(item, dict) and item.get("role") == "user"
                    rows.append(item_row(session_id, seq, turn, item))
                stored[session_id] = rows
            stored["long"] = [
                item_row(
                    "long", seq, (seq + 1) // 2,
                    {"role": "user" if seq % 2 else "assistant", "content": f"{seq} " * (seq % 9)},
                )
                for seq in range(1, LONG_ITEMS + 1)
            ]  # fmt: skip
            stored["empty"] = []
            for session_id, rows in stored.items():
                await connection.execute(
                    found["hs_sessions"].insert(),
                    {
                        "session_id": session_id, "created_at": WHEN, "updated_at": WHEN,
                        "metadata": {"from": "0003"}, "item_count": len(rows),
                        "turn_count": max([r["turn"] for r in rows], default=0),
                        "last_seq": max([r["seq"] for r in rows], default=0),
                    },
                )  # fmt: skip
                if rows:
                    await connection.execute(found["hs_items"].insert(), rows)
            await connection.execute(
                found["hs_turns"].insert(),
                [
                    {"session_id": s, "turn": t, "status": status, "input_tokens": 100 * t}
                    for (s, t), status in TURN_STATUSES_0003.items()
                ],
            )
    finally:
        await engine.dispose()


ITEM_ROWS = (
    "SELECT session_id, seq, turn, role, item_type, text, item FROM hs_items "
    "ORDER BY session_id, seq"
)


def expected_tokens(item_json: str) -> int:
    """The revision's documented estimate: characters / 4 + 4 per item; 4 for a row that is
    not a JSON object."""
    try:
        item = json.loads(item_json)
    except ValueError:
        return 4
    return EstimateCounter().count_item(item) if isinstance(item, dict) else 4


async def object_names(url: str) -> tuple[set[str], set[str], dict[str, set[str]]]:
    """Tables, views and the columns of each table."""
    engine = make_engine(resolve_url(url))
    try:
        async with engine.connect() as connection:

            def names(sync: Any) -> tuple[set[str], set[str], dict[str, set[str]]]:
                found = inspect(sync)
                tables = set(found.get_table_names())
                columns = {t: {c["name"] for c in found.get_columns(t)} for t in tables}
                return tables, set(found.get_view_names()), columns

            return await connection.run_sync(names)
    finally:
        await engine.dispose()


async def check_counts(url: str) -> list[tuple[Any, ...]]:
    """Every item's tokens and running total as revision 0004 defines them; the rows."""
    rows = await query(
        url,
        "SELECT session_id, seq, item, tokens, cumulative_tokens FROM hs_items "
        "ORDER BY session_id, seq",
    )
    assert len(rows) == 7 + 7 + LONG_ITEMS
    totals: dict[str, int] = {}
    for session_id, seq, item, tokens, cumulative in rows:
        assert tokens is not None and tokens > 0, (session_id, seq)
        assert tokens == expected_tokens(item), (session_id, seq, item)
        totals[session_id] = totals.get(session_id, 0) + tokens
        assert cumulative == totals[session_id], (session_id, seq)
    sessions = dict(await query(url, "SELECT session_id, cumulative_tokens FROM hs_sessions"))
    assert sessions == {**totals, "empty": 0}
    return rows


async def test_revision_0004_counts_the_tokens_of_items_stored_at_0003(db_url: str) -> None:
    await schema.upgrade(db_url, "0003")
    await fill_at_0003(db_url)
    before = await query(db_url, ITEM_ROWS)
    sessions_before = await query(db_url, "SELECT * FROM hs_sessions ORDER BY session_id")
    turns_before = await query(db_url, "SELECT * FROM hs_turns ORDER BY session_id, turn")
    tables, views, _ = await object_names(db_url)
    assert "hs_summaries" not in tables and "hs_context" not in views

    await schema.upgrade(db_url, "0004")
    assert await schema.current(db_url) == "0004"
    counted = await check_counts(db_url)
    # Spot checks against numbers worked out by hand.
    by_key = {(s, q): t for s, q, _, t, _ in counted}
    assert by_key["plain", 1] == 4 + 60  # "hello " * 40: 240 characters
    assert by_key["odd ✓ 🎉", 3] == 4 + 765  # one image
    assert by_key["odd ✓ 🎉", 6] == by_key["odd ✓ 🎉", 7] == 4  # not an object, corrupt
    assert by_key["odd ✓ 🎉", 2] == 4  # no text at all: the overhead alone
    # Nothing else of the rows changed.
    assert await query(db_url, ITEM_ROWS) == before
    tables, views, columns = await object_names(db_url)
    assert "hs_summaries" in tables and "hs_context" in views
    assert {"tokens", "cumulative_tokens"} <= columns["hs_items"]
    assert {"estimated_input_tokens", "window_first_seq"} <= columns["hs_turns"]
    assert await query(db_url, "SELECT count(*) FROM hs_summaries") == [(0,)]
    # hs_context over the counted rows: each turn's span and tokens, failed turns out.
    context = await query(
        db_url,
        "SELECT turn, first_seq, last_seq, items, tokens, status, in_window, summarized "
        "FROM hs_context WHERE session_id = 'plain' ORDER BY turn",
    )
    plain = [(q, t) for (s, q), t in by_key.items() if s == "plain"]
    assert [tuple(row) for row in context] == [
        (1, 1, 2, 2, sum(t for q, t in plain if q in (1, 2)), "completed", 1, 0),
        (2, 4, 6, 3, sum(t for q, t in plain if q in (4, 5, 6)), "failed", 0, 0),
        (3, 9, 10, 2, sum(t for q, t in plain if q in (9, 10)), "completed", 1, 0),
    ]

    await schema.downgrade(db_url, "0003")
    assert await schema.current(db_url) == "0003"
    tables, views, columns = await object_names(db_url)
    assert "hs_summaries" not in tables and "hs_context" not in views
    assert not {"tokens", "cumulative_tokens"} & columns["hs_items"]
    assert "cumulative_tokens" not in columns["hs_sessions"]
    assert not {"estimated_input_tokens", "window_first_seq"} & columns["hs_turns"]
    assert await query(db_url, ITEM_ROWS) == before
    assert await query(db_url, "SELECT * FROM hs_sessions ORDER BY session_id") == sessions_before
    assert await query(db_url, "SELECT * FROM hs_turns ORDER BY session_id, turn") == turns_before

    await schema.upgrade(db_url)
    assert await schema.current(db_url) == schema.head_revision()
    assert await check_counts(db_url) == counted
    # The migrated sessions work at head: failed turns stay unsent, totals keep running.
    async with HistoryStore(db_url, migrate="check") as store:
        plain_session = store.session("plain", budget=ContextBudget(10**6))
        sent = await plain_session.get_items()
        assert sent == [ITEMS_0003["plain"][i] for i in (0, 1, 5, 6)]
        window = await plain_session.window()
        assert window.items == sent and window.seqs == [1, 2, 9, 10]
        assert window.tokens == [by_key["plain", q] for q in (1, 2, 9, 10)]
        total_before = sum(t for _, t in plain)
        await plain_session.add_items([{"role": "user", "content": "after"}])
    ((tokens, cumulative),) = await query(
        db_url, "SELECT tokens, cumulative_tokens FROM hs_items WHERE session_id = 'plain' "
        "AND seq = 11",
    )  # fmt: skip
    assert tokens > 0 and cumulative == total_before + tokens
    assert await query(
        db_url, "SELECT cumulative_tokens FROM hs_sessions WHERE session_id = 'plain'"
    ) == [(cumulative,)]


# -- conversations through the runner ---------------------------------------------------------


def budget_on(server: StubModelServer) -> ContextBudget:
    return ContextBudget(CONTEXT, summarizer=summarizer_on(server))


FAILED_AT = (7, 31)  # these messages' model calls fail (HTTP 500)
TURNS = 40


async def converse(url: str, server: StubModelServer, session_id: str = "long") -> None:
    """TURNS turns under the budget, two of them failed; the window leaves the oldest behind,
    so the summarizer writes summaries; one item added and popped (a gap in seq)."""
    agent = agent_on(server)
    async with HistoryStore(url, migrate="auto", budget=budget_on(server)) as store:
        for number in range(TURNS):
            if number in FAILED_AT:
                server.script(Failure(500, "model down"))
                with pytest.raises(APIStatusError):
                    await Runner.run(agent, message(number), session_id=session_id, store=store)
                continue
            await Runner.run(agent, message(number), session_id=session_id, store=store)
            if number == 20:
                session = store.session(session_id)
                await session.add_items([{"role": "assistant", "content": "taken back " * 20}])
                assert (await session.pop_item()) is not None
        # A session the budget never filled: no summaries, every turn in the window.
        await Runner.run(agent, message(1000), session_id="short", store=store)
    errors = [r.error for r in server.requests if r.error]
    assert errors == []  # the budget kept every request within the context


async def rows_of(url: str, statement: Any) -> list[tuple[Any, ...]]:
    """Rows of a typed statement (text() would hand SQLite's datetimes back as strings)."""
    engine = make_engine(resolve_url(url))
    try:
        async with engine.connect() as connection:
            return normalized([tuple(row) for row in await connection.execute(statement)])
    finally:
        await engine.dispose()


async def turn_rows(url: str) -> list[tuple[Any, ...]]:
    """Every hs_turns row, every column."""
    turns = tables.turns
    return await rows_of(url, select(turns).order_by(turns.c.session_id, turns.c.turn))


async def summary_rows(url: str) -> list[tuple[Any, ...]]:
    """Every hs_summaries row, every column but the id (each database numbers its own)."""
    summaries = tables.summaries
    columns = [column for column in summaries.columns if column.name != "id"]
    return await rows_of(
        url, select(*columns).order_by(summaries.c.session_id, summaries.c.last_seq)
    )


async def token_rows(url: str) -> list[tuple[Any, ...]]:
    return await query(
        url,
        "SELECT session_id, seq, turn, tokens, cumulative_tokens, item FROM hs_items "
        "ORDER BY session_id, seq",
    )


async def windows(url: str, budget: ContextBudget) -> dict[str, Any]:
    async with HistoryStore(url, migrate="check", budget=budget) as store:
        return {s: await store.session(s).window() for s in ("long", "short")}


def check_conversation(turns: list[tuple[Any, ...]], summaries: list[tuple[Any, ...]]) -> None:
    """What converse() must have stored, or the comparisons below would prove little."""
    statuses = [(row[0], row[1], row[2]) for row in turns]
    assert [s for s in statuses if s[0] == "long" and s[2] != "completed"] == [
        ("long", FAILED_AT[0] + 1, "failed"),
        ("long", FAILED_AT[1] + 1, "failed"),
    ]
    assert len([s for s in statuses if s[0] == "long"]) == TURNS
    assert [s for s in statuses if s[0] == "short"] == [("short", 1, "completed")]
    assert len(summaries) >= 2 and {row[0] for row in summaries} == {"long"}
    assert all(row[3].startswith("covered ") for row in summaries)  # text


# -- (b) export -> import -------------------------------------------------------------------


async def test_export_and_import_keep_turn_statuses_summaries_and_the_window(
    tmp_path: Path, db_url: str
) -> None:
    source = sqlite(tmp_path / "source.db")
    with StubModelServer(max_context_tokens=CONTEXT, responder=summarize_by_numbers) as server:
        await converse(source, server)
        budget = budget_on(server)
        original_turns = await turn_rows(source)
        original_summaries = await summary_rows(source)
        check_conversation(original_turns, original_summaries)

        exported = tmp_path / "export.jsonl"
        done = await history_store.export(exported, source)
        assert (done.sessions, done.items) == (2, (TURNS - 2) * 2 + len(FAILED_AT) + 2)
        header = json.loads(exported.read_text(encoding="utf-8").splitlines()[1])["session"]
        assert header["session_id"] == "long"
        assert [r["status"] for r in header["turn_records"]].count("failed") == 2
        assert len(header["summaries"]) == len(original_summaries)

        if db_url.startswith("postgresql"):
            await schema.upgrade(db_url)  # PostgreSQL stores check their schema
        imported = await history_store.import_(exported, db_url)
        assert (imported.sessions, imported.items) == (done.sessions, done.items)

        assert await turn_rows(db_url) == original_turns
        assert await summary_rows(db_url) == original_summaries
        statuses = [t.status for t in await history_store.turns("long", db_url)]
        assert statuses.count("failed") == 2 and len(statuses) == TURNS
        before, after = await windows(source, budget), await windows(db_url, budget)
        for session_id in ("long", "short"):
            assert after[session_id] == before[session_id], session_id
        assert before["long"].summary is not None
        assert before["long"].summary.text == original_summaries[-1][3]
        assert message(FAILED_AT[1]) not in json.dumps(after["long"].items)  # a failed turn
        assert before["long"].ratio > 1.0  # calibrated: the usage came along in turn_records

        # A second import changes nothing: no summary or turn record twice.
        again = await history_store.import_(exported, db_url)
        assert again.items == 0
        assert await turn_rows(db_url) == original_turns
        assert await summary_rows(db_url) == original_summaries

        # The next request from the imported database is the original's.
        agent = agent_on(server)
        sent = []
        for url in (source, db_url):
            server.reset()
            async with HistoryStore(url, budget=budget) as store:
                await Runner.run(agent, message(TURNS), session_id="long", store=store)
            sent.append(server.requests[0].messages)
        assert sent[0] == sent[1]
        # The instructions with the summary, then the window without the failed turn's input.
        assert sent[0][0]["content"].endswith(original_summaries[-1][3])
        assert message(FAILED_AT[1]) not in json.dumps(sent[0])
        assert sent[0][-1]["content"] == message(TURNS)


# -- rows a window never sends must not take its room -------------------------------------


async def test_a_popped_item_costs_the_window_nothing(tmp_path: Path, db_url: str) -> None:
    """``hs_items.cumulative_tokens`` keeps a popped item's tokens (the running total never
    goes back), so the window must not count them against its room: the window after a pop
    is the window before it, and an export/import (which renumbers the totals from the rows
    there are) gives the same window."""
    budget = ContextBudget(CONTEXT)  # no summarizer: the window is cut by tokens alone
    source = sqlite(tmp_path / "source.db")
    with StubModelServer(max_context_tokens=CONTEXT) as server:
        agent = agent_on(server)
        async with HistoryStore(source, budget=budget) as store:
            for number in range(30):
                await Runner.run(agent, message(number), session_id="long", store=store)
            session = store.session("long")
            before = await session.window()
            await session.add_items([{"role": "user", "content": "taken back " * 100}])
            assert await session.pop_item() == {"role": "user", "content": "taken back " * 100}
            after = await session.window()
            assert len(await session.get_items(limit=10**6)) == 60 > len(before.items)
    exported = tmp_path / "export.jsonl"
    await history_store.export(exported, source)
    if db_url.startswith("postgresql"):
        await schema.upgrade(db_url)
    await history_store.import_(exported, db_url)
    async with HistoryStore(db_url, budget=budget) as store:
        imported = await store.session("long").window()
    # The same stored items, tokens and calibration as before the pop: the same window.
    assert after == before, (
        f"before the pop: {len(before.items)} items ({sum(before.tokens)} tokens); after: "
        f"{len(after.items)} items ({sum(after.tokens)} tokens)"
    )
    assert imported == after


async def test_a_refused_oversized_input_does_not_evict_the_history_before_it(
    db_url: str,
) -> None:
    """The refused turn's input is stored (failed, never sent) and its tokens are in the
    running totals; they must not push the turns before it, which fit, out of every later
    window (a summarizer would then fold them away)."""
    with StubModelServer(max_context_tokens=512) as server:
        agent = agent_on(server)
        async with HistoryStore(db_url, migrate="auto", budget=ContextBudget(512)) as store:
            await Runner.run(agent, "hello", session_id="big", store=store)
            await Runner.run(agent, "my order is 7", session_id="big", store=store)
            with pytest.raises(history_store.ContextBudgetExceededError):
                await Runner.run(agent, "x " * 3000, session_id="big", store=store)
            server.reset()
            await Runner.run(agent, "again", session_id="big", store=store)
            window = await store.session("big").window()
            statuses = [t.status for t in await history_store.turns("big", store)]
    assert statuses == ["completed", "completed", "failed", "completed"]
    assert sum(window.tokens) < 200  # everything not failed fits 512 several times over
    sent = server.requests[0].texts()
    assert "x x x" not in " ".join(sent)  # the failed turn stays unsent
    assert "hello" in sent and "my order is 7" in sent, sent
    assert window.seqs == [1, 2, 3, 4, 6, 7], window.seqs  # all but the failed seq 5


# -- (c) copy_database ----------------------------------------------------------------------


def check_running_totals(rows: list[tuple[Any, ...]], sessions: dict[str, int]) -> None:
    """Running totals only grow with seq, by each item's tokens where no row is missing."""
    previous: dict[str, tuple[int, int]] = {}
    gaps = 0
    for session_id, seq, _, tokens, cumulative, _ in rows:
        assert tokens > 0
        if session_id in previous:
            last_seq, last_total = previous[session_id]
            if seq == last_seq + 1:
                assert cumulative == last_total + tokens, (session_id, seq)
            else:
                gaps += 1  # a popped row's tokens stay in the total
                assert cumulative > last_total + tokens, (session_id, seq)
        else:
            assert seq == 1 and cumulative == tokens
        previous[session_id] = (seq, cumulative)
    assert gaps == 1  # the one popped item of converse()
    assert sessions == {s: total for s, (_, total) in previous.items()}


async def test_copy_keeps_turns_summaries_and_running_totals(tmp_path: Path, db_url: str) -> None:
    source = sqlite(tmp_path / "source.db")
    with StubModelServer(max_context_tokens=CONTEXT, responder=summarize_by_numbers) as server:
        await converse(source, server)
        budget = budget_on(server)
    turns, summaries = await turn_rows(source), await summary_rows(source)
    check_conversation(turns, summaries)
    items = await token_rows(source)
    totals = "SELECT session_id, cumulative_tokens, last_seq, item_count FROM hs_sessions"
    session_totals = await query(source, totals + " ORDER BY session_id")
    check_running_totals(items, {s: c for s, c, _, _ in session_totals})

    report = await history_store.copy_database(source, db_url, migrate="auto", batch_size=7)
    assert (report.sessions, report.copied) == (2, 2)

    assert await turn_rows(db_url) == turns
    assert await summary_rows(db_url) == summaries
    assert await token_rows(db_url) == items
    assert await query(db_url, totals + " ORDER BY session_id") == session_totals
    before, after = await windows(source, budget), await windows(db_url, budget)
    assert after == before and before["long"].summary is not None

    # Copying again changes nothing, turns and summaries included.
    again = await history_store.copy_database(source, db_url, batch_size=7)
    assert (again.unchanged, again.items_copied) == (2, 0)
    assert await turn_rows(db_url) == turns
    assert await summary_rows(db_url) == summaries

    # Both go on counting from the same total.
    extra = [{"role": "user", "content": "one more " * 11}]
    for url in (source, db_url):
        async with HistoryStore(url) as store:
            await store.session("long").add_items(extra)
    last = "SELECT tokens, cumulative_tokens FROM hs_items WHERE session_id = 'long' AND seq = :q"
    (src_row,) = await query(source, last, q=session_totals[0][2] + 1)
    (dst_row,) = await query(db_url, last, q=session_totals[0][2] + 1)
    assert src_row == dst_row and dst_row[1] == session_totals[0][1] + dst_row[0]


async def test_copy_of_a_budgeted_session_into_a_stale_destination_replaces_its_records(
    tmp_path: Path,
) -> None:
    """A destination holding the session's older prefix (copied before the source grew)
    ends with the source's turn records and summaries, not a mix."""
    source, destination = sqlite(tmp_path / "source.db"), sqlite(tmp_path / "dst.db")
    with StubModelServer(max_context_tokens=CONTEXT, responder=summarize_by_numbers) as server:
        agent = agent_on(server)
        async with HistoryStore(source, budget=budget_on(server)) as store:
            for number in range(12):
                await Runner.run(agent, message(number), session_id="long", store=store)
            await history_store.copy_database(source, destination)
            stale_turns = await turn_rows(destination)
            for number in range(12, 40):
                await Runner.run(agent, message(number), session_id="long", store=store)
    report = await history_store.copy_database(source, destination)
    assert report.resumed == 1
    turns = await turn_rows(source)
    assert len(stale_turns) == 12 and len(turns) == 40
    assert await turn_rows(destination) == turns
    summaries = await summary_rows(source)
    assert summaries and await summary_rows(destination) == summaries
    assert await token_rows(destination) == await token_rows(source)
