"""Failed runs: a retry after a failed model call stores its input once, and an orphaned
tool call (its output never stored) is never sent to a Chat Completions model."""

from __future__ import annotations

import agents
import pytest
from agents import Agent, OpenAIChatCompletionsModel, function_tool
from openai import APIStatusError, AsyncOpenAI
from sqlalchemy import text

from history_store import HistoryStore, Runner
from history_store.testing import Failure, StubModelServer, ToolCall


def _agent(client: AsyncOpenAI, tools: list[object] | None = None) -> Agent[None]:
    model = OpenAIChatCompletionsModel("stub-model", client)
    return Agent(name="a", model=model, tools=list(tools or []))  # type: ignore[arg-type]


def _users(items: list[object]) -> list[object]:
    return [i.get("content") for i in items if isinstance(i, dict) and i.get("role") == "user"]


async def test_sdk_runner_stores_the_input_twice_on_retry(
    store: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    """The SDK's behaviour, for contrast: input is saved before the model call that fails."""
    session = store.session("sdk")
    agent = _agent(openai_client)
    await agents.Runner.run(agent, "first", session=session)
    stub.script(Failure(500))
    with pytest.raises(APIStatusError):
        await agents.Runner.run(agent, "book a table", session=session)
    await agents.Runner.run(agent, "book a table", session=session)
    items = await session.get_items()
    assert _users(items) == ["first", "book a table", "book a table"]
    # ... and the model was sent the duplicate.
    assert stub.requests[-1].texts().count("book a table") == 2


async def test_our_runner_stores_the_retried_input_once(
    store: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    agent = _agent(openai_client)
    await Runner.run(agent, "first", store=store, session_id="ours")
    stub.script(Failure(500), Failure(503))
    for _ in range(2):
        with pytest.raises(APIStatusError):
            await Runner.run(agent, "book a table", store=store, session_id="ours")
    result = await Runner.run(agent, "book a table", store=store, session_id="ours")
    items = await store.session("ours").get_items()
    assert _users(items) == ["first", "book a table"]
    assert [i.get("role") for i in items] == ["user", "assistant", "user", "assistant"]
    sent = stub.requests[-1].texts()
    assert sent.count("book a table") == 1
    assert result.final_output == "reply 4: saw 3 messages; last user said: book a table"


async def test_a_retry_after_a_run_cut_short_sends_and_keeps_the_input_once(
    store: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    """A run killed after storing its input records no status; retrying that input marks the
    cut-short turn failed (kept, not sent) and sends the input once."""
    agent = _agent(openai_client)
    await Runner.run(agent, "first", store=store, session_id="cut")
    await store.session("cut").add_items([{"role": "user", "content": "book a table"}])
    result = await Runner.run(agent, "book a table", store=store, session_id="cut")
    assert stub.requests[-1].texts().count("book a table") == 1
    assert result.final_output == "reply 2: saw 3 messages; last user said: book a table"
    items = await store.session("cut").get_items()
    assert _users(items) == ["first", "book a table"]
    assert [i.get("role") for i in items] == ["user", "assistant", "user", "assistant"]
    engine = await store.engine()
    async with engine.connect() as connection:
        statuses = await connection.execute(
            text("SELECT turn, status FROM hs_turns WHERE session_id = 'cut' ORDER BY turn")
        )
        assert [tuple(row) for row in statuses] == [
            (1, "completed"),
            (2, "failed"),
            (3, "completed"),
        ]


async def test_same_input_after_an_answer_is_a_new_turn(
    store: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    """Only an unanswered input is merged with its retry: saying "yes" twice is two turns."""
    agent = _agent(openai_client)
    for _ in range(2):
        await Runner.run(agent, "yes", store=store, session_id="twice")
    items = await store.session("twice").get_items()
    assert _users(items) == ["yes", "yes"]
    assert len(items) == 4


async def test_orphaned_tool_call_from_an_interrupted_run_is_not_sent(
    store: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    calls = []

    @function_tool(failure_error_function=None)
    def lookup(city: str) -> str:
        """Look up a city."""
        calls.append(city)
        raise RuntimeError("tool crashed")

    agent = _agent(openai_client, [lookup])
    session = store.session("orphan")
    stub.script(ToolCall("lookup", '{"city": "Oslo"}'))
    with pytest.raises(agents.exceptions.AgentsException):
        await Runner.run(agent, "weather?", session=session)
    # That turn failed: its call, which never got an output, stays stored but is not history.
    assert await session.get_items() == []
    # A run killed between storing a call and its output leaves the same shape, no status.
    await session.add_items(
        [
            {"role": "user", "content": "weather in Oslo?"},
            {
                "type": "function_call",
                "call_id": "call_killed",
                "name": "lookup",
                "arguments": "{}",
            },
        ]
    )
    stored = await session.get_items()
    assert "function_call_output" not in [i.get("type") for i in stored]
    assert [i.get("call_id") for i in stored if i.get("type") == "function_call"][-1] == (
        "call_killed"
    )
    for runner in (Runner.run, agents.Runner.run):
        before = len(stub.requests)
        await runner(agent, "and now?", session=session)  # type: ignore[operator]
        request = stub.requests[before]
        assert request.api == "chat"
        roles = [m.get("role") for m in request.messages]
        assert "tool" not in roles
        assert not any(m.get("tool_calls") for m in request.messages)
    assert calls == ["Oslo"]
