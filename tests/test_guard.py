"""The strict server-state guard of history_store.Runner, against the loopback stub.

Every refusal must come before any HTTP request (``stub.requests == []``), before the session
is read or written, and before guardrails or tools run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrail,
    Model,
    OpenAIChatCompletionsModel,
    OpenAIProvider,
    OpenAIResponsesModel,
    RunConfig,
    RunContextWrapper,
    function_tool,
    handoff,
    set_default_openai_api,
)
from agents import Runner as SDKRunner
from agents.exceptions import UserError
from agents.items import TResponseInputItem
from agents.memory import SessionABC
from agents.models import _openai_shared
from agents.run_state import RunState
from openai import AsyncOpenAI

from history_store import HistoryStore, Runner, ServerManagedStateError, session_used
from history_store.testing import StubModelServer

# LiteLLM otherwise fetches its model price list from GitHub when imported.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

SERVER_STATE: list[dict[str, Any]] = [
    {"previous_response_id": "resp_1"},
    {"conversation_id": "conv_1"},
    {"auto_previous_response_id": True},
]
STATE_IDS = ["previous_response_id", "conversation_id", "auto_previous_response_id"]


class RecordingSession(SessionABC):
    """A Session that records every call, to show the guard never touches the session."""

    session_id = "recording"
    session_settings = None

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        self.calls.append("get_items")
        return []

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        self.calls.append("add_items")

    async def pop_item(self) -> TResponseInputItem | None:
        self.calls.append("pop_item")
        return None

    async def clear_session(self) -> None:
        self.calls.append("clear_session")


def chat_model(name: str, stub: StubModelServer, client: AsyncOpenAI) -> Model:
    if name == "OpenAIChatCompletionsModel":
        return OpenAIChatCompletionsModel("stub-model", client)
    if name == "LitellmModel":
        from agents.extensions.models.litellm_model import LitellmModel

        return LitellmModel("openai/stub-model", base_url=stub.base_url, api_key="stub-key")
    from agents.extensions.models.any_llm_model import AnyLLMModel

    return AnyLLMModel(
        "openai/stub-model", base_url=stub.base_url, api_key="stub-key", api="chat_completions"
    )


CHAT_CLASSES = ["OpenAIChatCompletionsModel", "LitellmModel", "AnyLLMModel"]


@pytest.fixture
def chat_default_api() -> Iterator[None]:
    """``set_default_openai_api("chat_completions")`` for one test, then the old default back."""
    before = _openai_shared.get_use_responses_by_default()
    set_default_openai_api("chat_completions")
    yield
    _openai_shared.set_use_responses_by_default(before)


@pytest.mark.parametrize("state", SERVER_STATE, ids=STATE_IDS)
@pytest.mark.parametrize("model_class", CHAT_CLASSES)
@pytest.mark.parametrize("streamed", [False, True], ids=["run", "streamed"])
async def test_guard_refuses_each_chat_model_class_before_any_request(
    stub: StubModelServer,
    openai_client: AsyncOpenAI,
    model_class: str,
    state: dict[str, Any],
    streamed: bool,
) -> None:
    model = chat_model(model_class, stub, openai_client)
    agent = Agent(name="support", model=model)
    with pytest.raises(ServerManagedStateError) as caught:
        if streamed:
            # Raised by the call itself, not later while streaming.
            Runner.run_streamed(agent, "hello", **state)
        else:
            await Runner.run(agent, "hello", **state)
    message = str(caught.value)
    parameter = next(iter(state)) + ("=True" if next(iter(state)).startswith("auto") else "")
    assert message.startswith(f"{parameter} was passed, but agent 'support' runs on {model_class}")
    assert "session" in message and "Responses model" in message
    assert isinstance(caught.value, UserError)
    assert stub.requests == []


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "streamed"])
async def test_guard_refuses_model_name_resolved_by_chat_provider(
    stub: StubModelServer, openai_client: AsyncOpenAI, streamed: bool
) -> None:
    config = RunConfig(
        model_provider=OpenAIProvider(openai_client=openai_client, use_responses=False)
    )
    agent = Agent(name="named", model="gpt-4o-mini")
    with pytest.raises(
        ServerManagedStateError, match="agent 'named' runs on OpenAIChatCompletionsModel"
    ):
        if streamed:
            Runner.run_streamed(agent, "hi", run_config=config, previous_response_id="resp_1")
        else:
            await Runner.run(agent, "hi", run_config=config, previous_response_id="resp_1")
    assert stub.requests == []


@pytest.mark.usefixtures("chat_default_api")
async def test_guard_follows_set_default_openai_api(
    stub: StubModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No run_config: the SDK's own default MultiProvider, built after the switch, with the
    # client it builds from the environment (pointed at the stub, so a leak would show).
    monkeypatch.setenv("OPENAI_API_KEY", "stub-key")
    monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
    agent = Agent(name="defaulted", model="gpt-4o-mini")
    with pytest.raises(
        ServerManagedStateError, match="'defaulted' runs on OpenAIChatCompletionsModel"
    ):
        await Runner.run(agent, "hi", conversation_id="conv_1")
    assert stub.requests == []


async def test_guard_follows_litellm_prefix(stub: StubModelServer) -> None:
    agent = Agent(name="prefixed", model="litellm/openai/stub-model")
    with pytest.raises(ServerManagedStateError, match="'prefixed' runs on LitellmModel"):
        await Runner.run(agent, "hi", previous_response_id="resp_1")
    assert stub.requests == []


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "streamed"])
async def test_guard_refuses_when_only_a_handoff_target_is_chat(
    stub: StubModelServer, openai_client: AsyncOpenAI, streamed: bool
) -> None:
    specialist = Agent(name="specialist", model=OpenAIChatCompletionsModel("m", openai_client))
    triage = Agent(
        name="triage",
        model=OpenAIResponsesModel("m", openai_client),
        handoffs=[handoff(specialist)],
    )
    with pytest.raises(ServerManagedStateError) as caught:
        if streamed:
            Runner.run_streamed(triage, "hi", previous_response_id="resp_1")
        else:
            await Runner.run(triage, "hi", previous_response_id="resp_1")
    assert (
        "agent 'specialist', reachable from 'triage' by handoff, runs on OpenAIChatCompletionsModel"
    ) in str(caught.value)
    assert stub.requests == []


async def test_guard_checks_an_agent_used_as_tool_against_its_own_ids(
    stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    """The nested run never gets the outer run's ids, only those given to as_tool()."""
    helper = Agent(name="helper", model=OpenAIChatCompletionsModel("m", openai_client))
    # A cycle back to the start must not loop the walk.
    helper.handoffs = []
    lead = Agent(
        name="lead",
        model=OpenAIResponsesModel("m", openai_client),
        tools=[helper.as_tool("ask_helper", "ask the helper", conversation_id="conv_tool")],
    )
    helper.handoffs.append(lead)
    with pytest.raises(ServerManagedStateError) as caught:
        await Runner.run(lead, "hi")
    assert (
        "conversation_id given to the tool 'ask_helper' (agent 'helper' used as a tool, a "
        "nested run), but agent 'helper' runs on OpenAIChatCompletionsModel"
    ) in str(caught.value)
    assert "as_tool(session=store.session(...))" in str(caught.value)
    assert stub.requests == []


async def test_guard_runs_before_session_guardrails_and_tools(
    stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    ran: list[str] = []

    def guardrail(ctx: RunContextWrapper[Any], agent: Agent[Any], text: Any) -> Any:
        ran.append("guardrail")
        return GuardrailFunctionOutput(output_info=None, tripwire_triggered=False)

    @function_tool
    def lookup() -> str:
        """Look something up."""
        ran.append("tool")
        return "found"

    agent = Agent(
        name="guarded",
        model=OpenAIChatCompletionsModel("m", openai_client),
        input_guardrails=[InputGuardrail(guardrail_function=guardrail)],
        tools=[lookup],
    )
    session = RecordingSession()
    with pytest.raises(ServerManagedStateError):
        await Runner.run(agent, "hi", session=session, previous_response_id="resp_1")
    assert (ran, session.calls, stub.requests) == ([], [], [])


async def test_guard_writes_nothing_to_the_store(
    stub: StubModelServer, openai_client: AsyncOpenAI, sqlite_url: str
) -> None:
    agent = Agent(name="a", model=OpenAIChatCompletionsModel("m", openai_client))
    async with HistoryStore(sqlite_url) as store:
        with pytest.raises(ServerManagedStateError):
            await Runner.run(agent, "hi", store=store, previous_response_id="resp_1")
        assert await store.session("default").get_items() == []
    assert stub.requests == []


async def test_plain_sdk_runner_silently_loses_history_and_ours_refuses(
    stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    """The bug: the SDK drops previous_response_id on Chat Completions and says little."""
    agent = Agent(name="a", model=OpenAIChatCompletionsModel("m", openai_client))
    first = await SDKRunner.run(agent, "My name is Ada.")
    second = await SDKRunner.run(
        agent, "What is my name?", previous_response_id=first.last_response_id or "resp_1"
    )
    assert stub.requests[1].messages == [{"role": "user", "content": "What is my name?"}]
    assert second.final_output == "reply 2: saw 1 messages; last user said: What is my name?"

    with pytest.raises(ServerManagedStateError):
        await Runner.run(agent, "What is my name?", previous_response_id="resp_1")
    assert len(stub.requests) == 2


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "streamed"])
async def test_responses_model_keeps_previous_response_id_and_gets_no_session(
    stub: StubModelServer, openai_client: AsyncOpenAI, sqlite_url: str, streamed: bool
) -> None:
    agent = Agent(name="r", model=OpenAIResponsesModel("m", openai_client))
    async with HistoryStore(sqlite_url) as store:
        if streamed:
            result: Any = Runner.run_streamed(
                agent, "again", previous_response_id="resp_7", store=store
            )
            async for _ in result.stream_events():
                pass
        else:
            result = await Runner.run(agent, "again", previous_response_id="resp_7", store=store)
        assert session_used(result) is None
        assert await store.session("default").get_items() == []
    assert [request.api for request in stub.requests] == ["responses"]
    assert stub.requests[0].body["previous_response_id"] == "resp_7"
    assert result.final_output == "reply 1: saw 1 messages; last user said: again"


async def test_guard_sees_ids_carried_by_a_resumed_run_state(
    stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    responses_start = Agent(name="start", model=OpenAIResponsesModel("m", openai_client))
    chat_current = Agent(name="current", model=OpenAIChatCompletionsModel("m", openai_client))
    state: RunState[Any, Agent[Any]] = RunState(
        RunContextWrapper(context=None), "hi", responses_start, previous_response_id="resp_9"
    )
    state._current_agent = chat_current  # the run had handed off before it paused
    with pytest.raises(
        ServerManagedStateError, match=r"^previous_response_id was passed, but agent 'current'"
    ):
        await Runner.run(responses_start, state)
    assert stub.requests == []
