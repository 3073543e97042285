"""agents.Runner with a HistorySession keeps multi-turn history, through the real openai client.

Each model call goes to the loopback stub, which records the request body: a turn's request
must carry every earlier turn, tool calls and their outputs included.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from agents import (
    Agent,
    Model,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
)
from openai import AsyncOpenAI

from history_store import HistorySession, HistoryStore
from history_store._items import extract_text
from history_store.testing import StubModelServer, ToolCall


@function_tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def make_model(kind: str, client: AsyncOpenAI) -> Model:
    if kind == "chat":
        return OpenAIChatCompletionsModel("stub-model", client)
    return OpenAIResponsesModel("stub-model", client)


async def run_turn(agent: Agent[Any], text: str, session: HistorySession, streamed: bool) -> Any:
    if not streamed:
        return (await Runner.run(agent, text, session=session)).final_output
    result = Runner.run_streamed(agent, text, session=session)
    async for _ in result.stream_events():
        pass
    return result.final_output


def conversation(stub: StubModelServer) -> list[list[str]]:
    return [request.texts() for request in stub.requests]


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_streamed"])
@pytest.mark.parametrize("kind", ["chat", "responses"])
async def test_three_turns_keep_history(
    store: HistoryStore,
    stub: StubModelServer,
    openai_client: AsyncOpenAI,
    kind: str,
    streamed: bool,
) -> None:
    agent = Agent(name="a", model=make_model(kind, openai_client), tools=[add])
    session = store.session(f"{kind}-{streamed}")
    stub.script("Hello Ada.", ToolCall("add", '{"a": 2, "b": 3}'), "It is 5.")

    assert await run_turn(agent, "My name is Ada.", session, streamed) == "Hello Ada."
    assert await run_turn(agent, "What is 2+3?", session, streamed) == "It is 5."
    third = await run_turn(agent, "What is my name?", session, streamed)
    assert third == "reply 4: saw 7 messages; last user said: What is my name?"

    sent = [request.messages for request in stub.requests]
    assert [len(messages) for messages in sent] == [1, 3, 5, 7]
    assert conversation(stub)[3][:3] == ["My name is Ada.", "Hello Ada.", "What is 2+3?"]
    last = sent[3]
    if kind == "chat":
        assert last[3]["tool_calls"][0]["function"] == {
            "name": "add",
            "arguments": '{"a": 2, "b": 3}',
        }
        assert {k: last[4][k] for k in ("role", "tool_call_id", "content")} == {
            "role": "tool",
            "tool_call_id": "call_2",
            "content": "5",
        }
    else:
        assert {k: last[3][k] for k in ("type", "call_id", "name", "arguments")} == {
            "type": "function_call",
            "call_id": "call_2",
            "name": "add",
            "arguments": '{"a": 2, "b": 3}',
        }
        assert {k: last[4][k] for k in ("type", "call_id", "output")} == {
            "type": "function_call_output",
            "call_id": "call_2",
            "output": "5",
        }
    assert [extract_text(message) for message in last[5:]] == ["It is 5.", "What is my name?"]

    stored = await session.get_items()
    assert [item.get("type", "message") for item in stored] == [
        "message",
        "message",
        "message",
        "function_call",
        "function_call_output",
        "message",
        "message",
        "message",
    ]
    assert extract_text(stored[-1]) == third


def test_run_sync_keeps_history(db_url: str, stub: StubModelServer) -> None:
    store = HistoryStore(db_url, migrate="auto")
    session = store.session("sync")

    def turns() -> list[str]:
        # A fresh thread: run_sync drives that thread's own default loop.
        client = AsyncOpenAI(base_url=stub.base_url, api_key="stub", max_retries=0)
        agent = Agent(name="s", model=OpenAIChatCompletionsModel("stub-model", client))
        return [
            Runner.run_sync(agent, text, session=session).final_output
            for text in ("one", "two", "three")
        ]

    outputs: list[list[str]] = []
    thread = threading.Thread(target=lambda: outputs.append(turns()))
    thread.start()
    thread.join()
    assert outputs == [
        [
            "reply 1: saw 1 messages; last user said: one",
            "reply 2: saw 3 messages; last user said: two",
            "reply 3: saw 5 messages; last user said: three",
        ]
    ]
    assert conversation(stub)[2] == [
        "one",
        "reply 1: saw 1 messages; last user said: one",
        "two",
        "reply 2: saw 3 messages; last user said: two",
        "three",
    ]

    async def read_and_close() -> int:
        try:
            return len(await session.get_items())
        finally:
            await store.close()

    assert asyncio.run(read_and_close()) == 6
