"""history_store.Runner attaches a session on Chat Completions, and only there."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from agents import (
    Agent,
    Model,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
)
from openai import AsyncOpenAI

from history_store import (
    HistorySession,
    HistoryStore,
    InvalidArgumentError,
    Runner,
    conversation,
    default_store,
    session_used,
)
from history_store import sessions as store_sessions
from history_store.testing import StubModelServer

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

FIRST_REPLY = "reply 1: saw 1 messages; last user said: My name is Ada."


def chat_agent(client: AsyncOpenAI, name: str = "assistant") -> Agent[None]:
    return Agent(name=name, model=OpenAIChatCompletionsModel("stub-model", client))


async def test_second_turn_carries_the_first_turn(
    store: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    agent = chat_agent(openai_client)
    first = await Runner.run(agent, "My name is Ada.", store=store)
    first_id = session_used(first).session_id  # type: ignore[union-attr]
    second = await Runner.run(agent, "What is my name?", store=store, session_id=first_id)

    assert stub.requests[1].messages == [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": FIRST_REPLY},
        {"role": "user", "content": "What is my name?"},
    ]
    assert second.final_output == "reply 2: saw 3 messages; last user said: What is my name?"
    used = session_used(second)
    assert isinstance(used, HistorySession)
    assert (used.session_id, used.store) == (first_id, store)
    assert len(await store.session(first_id).get_items()) == 4


async def test_runs_without_an_id_share_nothing(
    store: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    """User B's request never carries user A's message; one-shot prompts stay one-shot."""
    agent = chat_agent(openai_client)
    alice = await Runner.run(agent, "My card is 4111 1111 1111 1111.", store=store)
    bob = await Runner.run(agent, "What did the last user say?", store=store)
    batch = [await Runner.run(agent, f"prompt {n}", store=store) for n in range(3)]
    assert [len(request.messages) for request in stub.requests] == [1, 1, 1, 1, 1]
    assert "4111" not in str(stub.requests[1].body)
    ids = [session_used(r).session_id for r in (alice, bob, *batch)]  # type: ignore[union-attr]
    assert len(set(ids)) == 5 and "default" not in ids
    for session_id in ids:  # each stored like any other, under its own id
        assert len(await store.session(session_id).get_items()) == 2


async def test_conversation_scope_names_the_session(
    store: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    agent = chat_agent(openai_client)

    async def handle_request(user: str, text: str) -> str:
        with conversation(f"user-{user}"):
            result = await Runner.run(agent, text, store=store)
        return session_used(result).session_id  # type: ignore[union-attr]

    ids = await asyncio.gather(
        handle_request("a", "My name is Ada."), handle_request("b", "My name is Bob.")
    )
    assert sorted(ids) == ["user-a", "user-b"]
    assert await handle_request("a", "What is my name?") == "user-a"
    texts = stub.requests[-1].texts()
    assert (len(texts), texts[0], texts[-1]) == (3, "My name is Ada.", "What is my name?")
    assert "Bob" not in str(stub.requests[-1].body)
    # An explicit id, then run_config.group_id, win over the enclosing scope.
    with conversation("scope"):
        by_id = await Runner.run(agent, "x", store=store, session_id="explicit")
        by_group = await Runner.run(agent, "y", store=store, run_config=RunConfig(group_id="g"))
    assert [session_used(r).session_id for r in (by_id, by_group)] == ["explicit", "g"]  # type: ignore[union-attr]


def other_chat_model(kind: str, stub: StubModelServer) -> Model:
    if kind == "LitellmModel":
        from agents.extensions.models.litellm_model import LitellmModel

        return LitellmModel("openai/stub-model", base_url=stub.base_url, api_key="stub-key")
    from agents.extensions.models.any_llm_model import AnyLLMModel

    return AnyLLMModel(
        "openai/stub-model", base_url=stub.base_url, api_key="stub-key", api="chat_completions"
    )


@pytest.mark.parametrize("kind", ["LitellmModel", "AnyLLMModel"])
async def test_litellm_and_any_llm_get_history_attached(
    kind: str, stub: StubModelServer, sqlite_url: str
) -> None:
    agent = Agent(name="a", model=other_chat_model(kind, stub))
    async with HistoryStore(sqlite_url) as store:
        await Runner.run(agent, "My name is Ada.", store=store, session_id="ada")
        await Runner.run(agent, "What is my name?", store=store, session_id="ada")
    assert [request.api for request in stub.requests] == ["chat", "chat"]
    assert stub.requests[1].texts() == ["My name is Ada.", FIRST_REPLY, "What is my name?"]


async def test_session_id_then_group_id_then_store_default(
    stub: StubModelServer, openai_client: AsyncOpenAI, sqlite_url: str
) -> None:
    agent = chat_agent(openai_client)
    async with HistoryStore(sqlite_url, default_session_id="fallback") as store:
        by_id = await Runner.run(
            agent, "one", store=store, session_id="alice", run_config=RunConfig(group_id="g")
        )
        by_group = await Runner.run(agent, "two", store=store, run_config={"group_id": "g"})
        by_default = await Runner.run(agent, "three", store=store)
        ids = [session_used(r).session_id for r in (by_id, by_group, by_default)]  # type: ignore[union-attr]
        assert ids == ["alice", "g", "fallback"]
        assert [len(await store.session(i).get_items()) for i in ids] == [2, 2, 2]


async def test_run_streamed_attaches_and_carries_history(
    stub: StubModelServer, openai_client: AsyncOpenAI, sqlite_url: str
) -> None:
    agent = chat_agent(openai_client)
    async with HistoryStore(sqlite_url) as store:
        for text in ("My name is Ada.", "What is my name?"):
            streamed = Runner.run_streamed(agent, text, store=store, session_id="s")
            assert session_used(streamed) is not None
            async for _ in streamed.stream_events():
                pass
    assert stub.requests[1].texts() == ["My name is Ada.", FIRST_REPLY, "What is my name?"]
    assert streamed.final_output == "reply 2: saw 3 messages; last user said: What is my name?"


def test_run_sync_attaches_and_carries_history(
    stub: StubModelServer, openai_client: AsyncOpenAI, sqlite_url: str
) -> None:
    agent = chat_agent(openai_client)
    store = HistoryStore(sqlite_url)
    Runner.run_sync(agent, "My name is Ada.", store=store, session_id="ada")
    result = Runner.run_sync(agent, "What is my name?", store=store, session_id="ada")
    assert stub.requests[1].texts() == ["My name is Ada.", FIRST_REPLY, "What is my name?"]
    assert session_used(result).session_id == "ada"  # type: ignore[union-attr]
    # run_sync ran on this thread's default loop, which owns the store's engine.
    asyncio.get_event_loop_policy().get_event_loop().run_until_complete(store.close())


async def test_responses_backend_gets_no_session_unless_asked(
    stub: StubModelServer, openai_client: AsyncOpenAI, sqlite_url: str
) -> None:
    agent = Agent(name="r", model=OpenAIResponsesModel("stub-model", openai_client))
    async with HistoryStore(sqlite_url) as store:
        plain = await Runner.run(agent, "My name is Ada.", store=store)
        assert session_used(plain) is None
        assert (await store_sessions(store)).sessions == []

        await Runner.run(agent, "My name is Ada.", store=store, session_id="asked")
        asked = await Runner.run(agent, "What is my name?", store=store, session_id="asked")
        assert session_used(asked).session_id == "asked"  # type: ignore[union-attr]
    assert [request.api for request in stub.requests] == ["responses"] * 3
    assert stub.requests[2].texts() == [
        "My name is Ada.",
        "reply 2: saw 1 messages; last user said: My name is Ada.",
        "What is my name?",
    ]


async def test_an_explicit_session_is_used_as_given(
    stub: StubModelServer, openai_client: AsyncOpenAI, sqlite_url: str
) -> None:
    agent = chat_agent(openai_client)
    async with HistoryStore(sqlite_url) as store:
        mine = store.session("mine")
        result = await Runner.run(agent, "hello", session=mine)
        assert session_used(result) is mine
        assert len(await mine.get_items()) == 2
        with pytest.raises(InvalidArgumentError, match=r"session= .* or session_id="):
            await Runner.run(agent, "hello", session=mine, session_id="other")
        assert stub.requests[1:] == []
        assert (await store_sessions(store)).sessions[0].session_id == "mine"
        assert len((await store_sessions(store)).sessions) == 1


async def test_default_store_is_reused_per_url(
    stub: StubModelServer,
    openai_client: AsyncOpenAI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'default.db'}"
    monkeypatch.setenv("HISTORY_STORE_URL", url)
    agent = chat_agent(openai_client)
    first = await Runner.run(agent, "My name is Ada.", session_id="ada")
    second = await Runner.run(agent, "What is my name?", session_id="ada")
    store = default_store()
    try:
        assert session_used(first).store is store  # type: ignore[union-attr]
        assert session_used(second).store is store  # type: ignore[union-attr]
        assert default_store(url) is store
        assert stub.requests[1].texts() == ["My name is Ada.", FIRST_REPLY, "What is my name?"]
    finally:
        await store.close()
    assert default_store(url) is not store  # a closed default store is replaced
    await default_store(url).close()
