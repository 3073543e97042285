"""The model-level guard (strict_model, StrictModelProvider) and install() for plain Runner."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import agents
import pytest
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIProvider,
    OpenAIResponsesModel,
    RunConfig,
)
from openai import AsyncOpenAI

import history_store
from history_store import (
    HistoryStore,
    ServerManagedStateError,
    StrictModel,
    StrictModelProvider,
    session_used,
    strict_model,
)
from history_store.testing import StubModelServer, ToolCall

ORIGINALS = {name: agents.Runner.__dict__[name] for name in ("run", "run_sync", "run_streamed")}


@pytest.fixture
def installed_store(sqlite_url: str) -> Iterator[HistoryStore]:
    store = HistoryStore(sqlite_url)
    history_store.install(store)
    try:
        yield store
    finally:
        history_store.uninstall()


def test_strict_model_wraps_only_chat_completions_models(openai_client: AsyncOpenAI) -> None:
    chat = OpenAIChatCompletionsModel("m", openai_client)
    responses = OpenAIResponsesModel("m", openai_client)
    strict = strict_model(chat)
    assert isinstance(strict, StrictModel) and strict.__wrapped__ is chat
    assert strict_model(strict) is strict
    assert strict_model(responses) is responses
    assert strict.model == "m"  # other attributes come from the wrapped model
    assert history_store.is_chat_completions(strict) is True


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "streamed"])
async def test_strict_model_refuses_ids_under_plain_sdk_runner(
    stub: StubModelServer, openai_client: AsyncOpenAI, streamed: bool
) -> None:
    agent = Agent(name="a", model=strict_model(OpenAIChatCompletionsModel("m", openai_client)))
    with pytest.raises(ServerManagedStateError) as caught:
        if streamed:
            result = agents.Runner.run_streamed(agent, "hi", previous_response_id="resp_1")
            async for _ in result.stream_events():
                pass
        else:
            await agents.Runner.run(agent, "hi", previous_response_id="resp_1")
    assert str(caught.value).startswith(
        "previous_response_id was passed to OpenAIChatCompletionsModel, a Chat Completions model."
    )
    assert stub.requests == []


async def test_strict_provider_refuses_ids_and_passes_plain_calls(
    stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    provider = StrictModelProvider(OpenAIProvider(openai_client=openai_client, use_responses=False))
    config = RunConfig(model_provider=provider)
    agent = Agent(name="a", model="gpt-4o-mini")
    with pytest.raises(ServerManagedStateError, match=r"^conversation_id was passed to Open"):
        await agents.Runner.run(agent, "hi", run_config=config, conversation_id="conv_1")
    assert stub.requests == []

    result = await agents.Runner.run(agent, "hi", run_config=config)
    assert result.final_output == "reply 1: saw 1 messages; last user said: hi"
    assert stub.requests[0].body["model"] == "gpt-4o-mini"

    responses = StrictModelProvider(OpenAIProvider(openai_client=openai_client, use_responses=True))
    assert type(responses.get_model("gpt-4o-mini")) is OpenAIResponsesModel


async def test_install_makes_plain_runner_attach_and_refuse(
    stub: StubModelServer, openai_client: AsyncOpenAI, installed_store: HistoryStore
) -> None:
    agent = Agent(name="a", model=OpenAIChatCompletionsModel("m", openai_client))
    await agents.Runner.run(agent, "My name is Ada.", session_id="ada")
    second = await agents.Runner.run(agent, "What is my name?", session_id="ada")
    assert stub.requests[1].texts() == [
        "My name is Ada.",
        "reply 1: saw 1 messages; last user said: My name is Ada.",
        "What is my name?",
    ]
    assert session_used(second).store is installed_store  # type: ignore[union-attr]

    with pytest.raises(ServerManagedStateError):
        agents.Runner.run_streamed(agent, "x", None, 10, None, None, "resp_1")
    assert len(stub.requests) == 2
    await installed_store.close()


def test_uninstall_restores_the_exact_originals() -> None:
    history_store.uninstall()  # not installed: nothing to do
    history_store.install()
    patched = dict(agents.Runner.__dict__)
    history_store.install()  # idempotent: the same patch stays
    assert {name: agents.Runner.__dict__[name] for name in ORIGINALS} == {
        name: patched[name] for name in ORIGINALS
    }
    assert all(patched[name] is not ORIGINALS[name] for name in ORIGINALS)
    assert history_store.installed() is True
    history_store.uninstall()
    assert all(agents.Runner.__dict__[name] is ORIGINALS[name] for name in ORIGINALS)
    assert history_store.installed() is False


def test_install_and_uninstall_from_many_threads_leave_a_consistent_state() -> None:
    barrier = threading.Barrier(8)

    def flip(index: int) -> None:
        barrier.wait()
        for _ in range(200):
            history_store.install() if index % 2 else history_store.uninstall()

    threads = [threading.Thread(target=flip, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    current = {name: agents.Runner.__dict__[name] for name in ORIGINALS}
    history_store.uninstall()
    assert all(agents.Runner.__dict__[name] is ORIGINALS[name] for name in ORIGINALS)
    # Either fully patched or fully original, never a mix.
    assert all(current[n] is ORIGINALS[n] for n in ORIGINALS) or all(
        current[n] is not ORIGINALS[n] for n in ORIGINALS
    )


async def test_installed_agent_as_tool_runs_without_the_outer_session(
    stub: StubModelServer, openai_client: AsyncOpenAI, installed_store: HistoryStore
) -> None:
    helper = Agent(name="helper", model=OpenAIChatCompletionsModel("m", openai_client))
    lead = Agent(
        name="lead",
        model=OpenAIChatCompletionsModel("m", openai_client),
        tools=[helper.as_tool("ask_helper", "Ask the helper.")],
    )
    await installed_store.session("lead").add_items([{"role": "user", "content": "earlier turn"}])
    stub.script(ToolCall("ask_helper", '{"input": "sub question"}'), "helper says hi", "done")
    result: Any = await agents.Runner.run(lead, "go", session_id="lead")

    assert result.final_output == "done"
    assert stub.requests[0].texts() == ["earlier turn", "go"]
    assert stub.requests[1].texts() == ["sub question"]  # the nested run saw no history
    stored = await installed_store.session("lead").get_items()
    assert [item.get("type", "message") for item in stored] == [
        "message",
        "message",
        "function_call",
        "function_call_output",
        "message",
    ]
    await installed_store.close()
