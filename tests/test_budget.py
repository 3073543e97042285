"""Long conversations under a token budget, against a stub with a real context limit.

The stub (``StubModelServer(max_context_tokens=2048)``) counts each request by its stated
rule (the characters / 4 estimate of every message, plus each tool definition's JSON) and
answers HTTP 400 ``context_length_exceeded`` past the limit, as OpenAI does. The runs go
through the real ``openai`` client and the SDK, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import pytest
from agents import function_tool
from budget_support import (
    FILLER,
    agent_on,
    message,
    summarize_by_numbers,
    summarizer_on,
    summarizer_request,
)
from openai import BadRequestError
from sqlalchemy import text

import history_store
from history_store import (
    ContextBudget,
    ContextBudgetExceededError,
    HistoryStore,
    Runner,
)
from history_store.budget.context import SummaryDraft
from history_store.testing import Failure, RecordedRequest, StubModelServer, ToolCall

CONTEXT = 2048


async def summaries(store: HistoryStore, session_id: str) -> list[tuple[Any, ...]]:
    engine = await store.engine()
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT first_seq, last_seq, text FROM hs_summaries WHERE session_id = :s "
                "ORDER BY last_seq"
            ),
            {"s": session_id},
        )
        return [tuple(row) for row in rows]


async def first_items_of_turns(store: HistoryStore, session_id: str) -> dict[int, int]:
    """seq -> the message number of each user item."""
    engine = await store.engine()
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT seq, text FROM hs_items WHERE session_id = :s AND role = 'user'"),
            {"s": session_id},
        )
        return {seq: int(body.split(":")[0].split()[1]) for seq, body in rows}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)


async def test_without_a_budget_the_context_overflows_and_never_recovers(db_url: str) -> None:
    with StubModelServer(max_context_tokens=CONTEXT) as server:
        agent = agent_on(server)
        async with HistoryStore(db_url, migrate="auto") as store:
            failed_at = None
            for number in range(100):
                try:
                    await Runner.run(agent, message(number), session_id="long", store=store)
                except BadRequestError as error:
                    assert error.code == "context_length_exceeded"
                    failed_at = number
                    break
            assert failed_at is not None and 10 < failed_at < 100
            for number in range(failed_at + 1, failed_at + 4):
                with pytest.raises(BadRequestError, match="maximum context length"):
                    await Runner.run(agent, message(number), session_id="long", store=store)


async def test_500_turns_fit_the_context_and_every_departed_turn_is_summarized_once(
    db_url: str,
) -> None:
    with StubModelServer(max_context_tokens=CONTEXT, responder=summarize_by_numbers) as server:
        agent = agent_on(server)
        budget = ContextBudget(CONTEXT, summarizer=summarizer_on(server))
        async with HistoryStore(db_url, migrate="auto", budget=budget) as store:
            for number in range(500):
                await Runner.run(agent, message(number), session_id="long", store=store)
            assert [r.error for r in server.requests if r.error] == []
            assert max(r.input_tokens for r in server.requests) <= CONTEXT
            # Every turn is stored, completed and readable in full.
            session = store.session("long")
            everything = await session.get_items(limit=10**6)
            assert len(everything) == 1000
            assert everything[0]["content"] == message(0)
            recorded = await history_store.turns("long", store)
            assert [t.status for t in recorded] == ["completed"] * 500
            # The summaries cover exactly the turns before the window, each once, in order.
            window = await session.window()
            stored = await summaries(store, "long")
            assert stored and stored[0][0] == 1
            for (_, last, _), (first, _, _) in itertools.pairwise(stored):
                assert first == last + 1
            assert window.first_seq == stored[-1][1] + 1
            users = await first_items_of_turns(store, "long")
            departed = [n for seq, n in sorted(users.items()) if seq < window.first_seq]
            told = [
                int(n) for _, _, said in stored for n in said.removeprefix("covered ").split(",")
            ]
            assert told == departed
            # The window is recent: the last request carried the newest turns.
            last = [r for r in server.requests if not summarizer_request(r)][-1]
            assert message(499) in last.texts()[-1] and message(498) in " ".join(last.texts())


async def test_a_restart_continues_with_the_same_window(db_url: str) -> None:
    with StubModelServer(max_context_tokens=CONTEXT, responder=summarize_by_numbers) as server:
        agent = agent_on(server)
        budget = ContextBudget(CONTEXT, summarizer=summarizer_on(server))
        async with HistoryStore(db_url, migrate="auto", budget=budget) as store:
            for number in range(60):
                await Runner.run(agent, message(number), session_id="kept", store=store)
            before = await store.session("kept").window()
        # A new process would open a new store: the window comes from the database alone.
        async with HistoryStore(db_url, migrate="auto", budget=budget) as reopened:
            after = await reopened.session("kept").window()
            assert (after.items, after.seqs, after.ratio) == (
                before.items,
                before.seqs,
                before.ratio,
            )
            server.reset()
            await Runner.run(agent, message(60), session_id="kept", store=reopened)
        sent = server.requests[0].messages
        assert sent[0]["content"].endswith(before.items[0]["content"])  # the summary, first
        assert sent[-1]["content"] == message(60)
        # Then the window's newest turns: those that fit beside the instructions and input.
        carried = [_text(m["content"]) for m in sent[1:-1]]
        kept = [_text(item["content"]) for item in before.items[1:]]
        assert carried == kept[len(kept) - len(carried) :] and len(carried) >= len(kept) - 4


async def test_a_server_counting_30_percent_more_is_respected_after_calibration(
    db_url: str,
) -> None:
    with StubModelServer(max_context_tokens=CONTEXT, token_scale=1.3) as server:
        agent = agent_on(server)
        async with HistoryStore(db_url, migrate="auto", budget=ContextBudget(CONTEXT)) as store:
            for number in range(150):
                await Runner.run(agent, message(number), session_id="scaled", store=store)
            window = await store.session("scaled").window()
        assert [r.error for r in server.requests if r.error] == []
        counts = [r.input_tokens for r in server.requests]
        assert max(counts) <= CONTEXT
        # The window filled up to what the server allows, not to what the estimate allows.
        assert max(counts) > CONTEXT * 0.85
        assert window.ratio >= 1.25


@pytest.mark.parametrize("streamed", [False, True])
async def test_tool_calls_stay_paired_and_every_request_fits(
    sqlite_url: str, streamed: bool
) -> None:
    @function_tool
    def lookup(order: int) -> str:
        """Look an order up."""
        return f"order {order}: shipped, " + FILLER

    def reply(request: RecordedRequest) -> ToolCall | None:
        # Call the tool once per turn, then answer (the default echo).
        return (
            ToolCall("lookup", '{"order": 7}') if request.messages[-1]["role"] == "user" else None
        )

    with StubModelServer(max_context_tokens=1024, responder=reply) as server:
        agent = agent_on(server, tools=[lookup])
        async with HistoryStore(sqlite_url, budget=ContextBudget(1024)) as store:
            for number in range(60):
                if streamed:
                    result = Runner.run_streamed(
                        agent, message(number), session_id="tools", store=store
                    )
                    async for _ in result.stream_events():
                        pass
                else:
                    await Runner.run(agent, message(number), session_id="tools", store=store)
        assert [r.error for r in server.requests if r.error] == []
        assert len(server.requests) == 120
        assert max(r.input_tokens for r in server.requests) <= 1024


async def test_an_input_too_large_for_the_budget_is_refused_before_any_request(
    db_url: str,
) -> None:
    with StubModelServer(max_context_tokens=512) as server:
        agent = agent_on(server)
        async with HistoryStore(db_url, migrate="auto", budget=ContextBudget(512)) as store:
            await Runner.run(agent, "hello", session_id="big", store=store)
            with pytest.raises(ContextBudgetExceededError) as refused:
                await Runner.run(agent, "x" * 4000, session_id="big", store=store)
            assert refused.value.needed > refused.value.limit == 512
            assert "max_input_tokens" in str(refused.value) and "Nothing was sent" in str(
                refused.value
            )
            assert len(server.requests) == 1
            # The refused turn is failed: the next request does not carry it.
            await Runner.run(agent, "again", session_id="big", store=store)
            assert "x" * 4000 not in " ".join(server.requests[-1].texts())
            statuses = [t.status for t in await history_store.turns("big", store)]
            assert statuses == ["completed", "failed", "completed"]


async def test_a_failing_summarizer_logs_a_warning_and_the_plain_window_is_used(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    def failing(request: RecordedRequest) -> Failure | None:
        return Failure(500, "summarizer down") if summarizer_request(request) else None

    with StubModelServer(max_context_tokens=CONTEXT, responder=failing) as server:
        agent = agent_on(server)
        budget = ContextBudget(CONTEXT, summarizer=summarizer_on(server))
        async with HistoryStore(sqlite_url, budget=budget) as store:
            with caplog.at_level(logging.WARNING, logger="history_store"):
                for number in range(60):
                    await Runner.run(agent, message(number), session_id="s", store=store)
            assert await summaries(store, "s") == []
        main = [r for r in server.requests if not summarizer_request(r)]
        assert [r.error for r in main if r.error] == []
        assert max(r.input_tokens for r in main) <= CONTEXT
        assert any("could not summarize" in r.getMessage() for r in caplog.records)


async def test_plain_agents_runner_gets_a_history_within_the_budget(sqlite_url: str) -> None:
    import agents

    with StubModelServer(max_context_tokens=CONTEXT) as server:
        agent = agent_on(server)
        budget = ContextBudget(1500)
        async with HistoryStore(sqlite_url) as store:
            session = store.session("plain", budget=budget)
            for number in range(80):
                await agents.Runner.run(agent, message(number), session=session)
            history = await session.get_items()
            window = await session.window()
            # Only the history is budgeted here (documented): it alone fits.
            assert history == window.items and sum(window.tokens) <= 1500
            # Explicit limits, pop_item and the tools still see everything.
            assert len(await session.get_items(limit=10**6)) == 160
            assert len(await history_store.show("plain", store)) == 160
            popped = await session.pop_item()
            assert popped is not None and popped["role"] == "assistant"
        assert [r.error for r in server.requests if r.error] == []


async def test_concurrent_compactions_never_summarize_a_turn_twice(db_url: str) -> None:
    import asyncio

    with StubModelServer(responder=summarize_by_numbers) as server:
        agent = agent_on(server)
        async with HistoryStore(db_url, migrate="auto") as store:
            session = store.session("both")
            for number in range(40):
                await Runner.run(agent, message(number), session=session)
            budget = ContextBudget(600, summarizer=summarizer_on(server))
            first, second = await asyncio.gather(
                session.compact(budget=budget), store.session("both").compact(budget=budget)
            )
            stored = await summaries(store, "both")
        assert len(first) + len(second) == len(stored) > 0
        for (_, last, _), (first_seq, _, _) in itertools.pairwise(stored):
            assert first_seq == last + 1


async def test_the_context_view_shows_the_window_and_the_summarized_turns(
    db_url: str,
) -> None:
    with StubModelServer(max_context_tokens=CONTEXT, responder=summarize_by_numbers) as server:
        agent = agent_on(server)
        budget = ContextBudget(CONTEXT, summarizer=summarizer_on(server))
        async with HistoryStore(db_url, migrate="auto", budget=budget) as store:
            for number in range(50):
                await Runner.run(agent, message(number), session_id="view", store=store)
            window = await store.session("view").window()
            result = await history_store.sql(
                "SELECT turn, first_seq, in_window, summarized FROM hs_context "
                "WHERE session_id = 'view' ORDER BY turn",
                store,
                unsafe_role=True,  # the test database's role is a superuser
            )
        rows = [tuple(row) for row in result.rows]
        assert len(rows) == 50
        summarized = {turn for turn, _, _, done in rows if done}
        in_window = {turn for turn, _, inside, _ in rows if inside}
        assert summarized and in_window
        assert summarized.isdisjoint(in_window)
        assert summarized | in_window == set(range(1, 51))
        assert min(first for _, first, inside, _ in rows if inside) == window.first_seq


class _Verbose:
    """A summarizer whose summaries are too long to fold anything more into."""

    max_input_tokens = 300

    def overhead_tokens(self, counter: history_store.TokenCounter) -> int:
        return 20

    async def summarize(self, previous: str | None, items: Any) -> SummaryDraft:
        return SummaryDraft(text="long summary " * 200)


async def test_a_summary_too_long_to_fold_into_warns_and_writes_nothing_more(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'verbose.db'}"
    budget = ContextBudget(600, summarizer=_Verbose())
    with StubModelServer() as server:
        agent = agent_on(server)
        async with HistoryStore(url, budget=budget) as store:
            for number in range(12):
                await Runner.run(agent, message(number), session_id="v", store=store)
            written = await summaries(store, "v")
            with caplog.at_level(logging.WARNING, logger="history_store"):
                assert await store.session("v").compact() == []
    assert len(written) == 1  # the first summary fits no later fold
    assert "leave no room" in caplog.text and "max_input_tokens" in caplog.text
