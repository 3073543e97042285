"""The attached history is safe to leave on: the SDK's real patterns, through the real
``openai`` client against the loopback stub, on SQLite and PostgreSQL.

Each test asserts what every request carried and what was stored, with which turn status
and usage (``hs_turns``). Guard cases assert that no request was sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import agents
import pytest
from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrailTripwireTriggered,
    Model,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    function_tool,
    input_guardrail,
)
from agents.exceptions import UserError
from openai import APIStatusError, AsyncOpenAI
from sqlalchemy import text

import history_store
from history_store import (
    HistoryStore,
    Runner,
    ServerManagedStateError,
    declare_chat_completions,
    session_used,
    tables,
)
from history_store.testing import Failure, StubModelServer, ToolCall

WEB_SEARCH: dict[str, Any] = {
    "type": "web_search_call",
    "id": "ws_1",
    "status": "completed",
    "action": {"type": "search", "query": "weather in Paris"},
}


def chat(client: AsyncOpenAI, name: str = "assistant", **options: Any) -> Agent[Any]:
    return Agent(name=name, model=OpenAIChatCompletionsModel("stub-model", client), **options)


def users(texts: list[str]) -> list[str]:
    return [t for t in texts if not t.startswith("reply ")]


async def turn_rows(store: HistoryStore, session_id: str) -> list[tuple[Any, ...]]:
    engine = await store.engine()
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT turn, status, agent, model, requests, input_tokens, output_tokens, "
                "total_tokens FROM hs_turns WHERE session_id = :s ORDER BY turn"
            ),
            {"s": session_id},
        )
        return [tuple(row) for row in rows]


async def stored_rows(store: HistoryStore, session_id: str) -> list[tuple[Any, ...]]:
    engine = await store.engine()
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT turn, role, item_type, text FROM hs_items WHERE session_id = :s "
                "ORDER BY seq"
            ),
            {"s": session_id},
        )
        return [tuple(row) for row in rows]


@pytest.fixture
def installed(store: HistoryStore) -> Any:
    history_store.install(store)
    try:
        yield store
    finally:
        history_store.uninstall()


# -- 2. a list input is history the caller manages -----------------------------------------


@pytest.mark.parametrize("runner", ["history_store", "installed"])
async def test_the_sdks_manual_history_pattern_is_not_doubled(
    store: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI, runner: str
) -> None:
    agent = chat(openai_client)
    if runner == "installed":
        history_store.install(store)
    try:
        run = Runner.run if runner == "history_store" else agents.Runner.run
        items: list[Any] = []
        results = []
        for number in range(4):
            new_input = [*items, {"role": "user", "content": f"message {number}"}]
            result = await run(agent, new_input, store=store)  # type: ignore[operator]
            items = result.to_input_list()
            results.append(result)
    finally:
        history_store.uninstall()
    assert [len(request.messages) for request in stub.requests] == [1, 3, 5, 7]
    # Each run went to its own new session: the last holds the 8 messages, nothing twice.
    ids = [session_used(r).session_id for r in results]  # type: ignore[union-attr]
    assert len(set(ids)) == 4
    last = await store.session(ids[-1]).get_items()
    assert len(last) == 8
    assert [len(await store.session(i).get_items()) for i in ids] == [2, 4, 6, 8]


async def test_a_list_input_with_an_id_follows_the_sdks_rules(
    store: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    """With an id, the SDK's own rule: the stored history, then the list given."""
    agent = chat(openai_client)
    await Runner.run(agent, "first", store=store, session_id="mine")
    await Runner.run(agent, [{"role": "user", "content": "second"}], store=store, session_id="mine")
    assert users(stub.requests[1].texts()) == ["first", "second"]


# -- 3. mixed graphs -------------------------------------------------------------------------


def mixed_graph(client: AsyncOpenAI) -> Agent[Any]:
    specialist = chat(client, "specialist")
    return Agent(
        name="triage",
        model=OpenAIResponsesModel("stub-model", client),
        handoffs=[specialist],
    )


async def test_a_responses_agent_handing_off_to_chat_gets_the_advice_it_can_follow(
    store: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    triage = mixed_graph(openai_client)
    with pytest.raises(ServerManagedStateError) as refused:
        await Runner.run(triage, "hi", store=store, previous_response_id="resp_1")
    assert stub.requests == []
    message = str(refused.value)
    assert "agent 'specialist', reachable from 'triage' by handoff, runs on" in message
    assert "Leave them out: history_store.Runner" in message
    # Following the advice: the ids left out, a session is attached and used.
    stub.script(ToolCall("transfer_to_specialist"), "Specialist here.")
    first = await Runner.run(triage, "My name is Ada.", store=store)
    used = session_used(first)
    assert used is not None
    stub.script(ToolCall("transfer_to_specialist"))
    await Runner.run(triage, "What is my name?", store=store, session_id=used.session_id)
    assert [r.api for r in stub.requests] == ["responses", "chat", "responses", "chat"]
    sent = stub.requests[3].texts()
    assert sent.index("My name is Ada.") < sent.index("What is my name?")


async def test_a_handoff_to_chat_leaves_out_what_chat_cannot_take(
    store: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    triage = mixed_graph(openai_client)
    session = store.session("mixed")
    await session.add_items(
        [{"role": "user", "content": "Weather in Paris?"}, WEB_SEARCH]  # type: ignore[list-item]
    )
    stub.script(ToolCall("transfer_to_specialist"), "Sunny tomorrow too.")
    result = await Runner.run(triage, "And tomorrow?", store=store, session_id="mixed")
    assert result.final_output == "Sunny tomorrow too."
    responses_request, chat_request = stub.requests
    # The Responses agent is sent the web search item, the Chat Completions one is not.
    assert any(m.get("type") == "web_search_call" for m in responses_request.messages)
    assert "web_search_call" not in str(chat_request.body)
    assert users(chat_request.texts())[:2] == ["Weather in Paris?", "And tomorrow?"]
    stored = await session.get_items()
    assert stored[1] == WEB_SEARCH  # still stored


# -- 4. agents used as tools -----------------------------------------------------------------


async def test_the_outer_runs_ids_do_not_reach_an_agent_used_as_a_tool(
    store: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    helper = chat(openai_client, "helper")
    orchestrator = Agent(
        name="orchestrator",
        model=OpenAIResponsesModel("stub-model", openai_client),
        tools=[helper.as_tool("ask_helper", "Ask the helper.")],
    )
    stub.script(ToolCall("ask_helper", '{"input": "sub question"}'), "helper answer", "final")
    result = await Runner.run(orchestrator, "go", store=store, previous_response_id="resp_0")
    assert result.final_output == "final"
    assert [r.api for r in stub.requests] == ["responses", "chat", "responses"]
    assert stub.requests[0].body["previous_response_id"] == "resp_0"
    assert stub.requests[1].texts() == ["sub question"]
    assert session_used(result) is None  # a Responses run on server state


@pytest.mark.parametrize("option", ["previous_response_id", "conversation_id"])
@pytest.mark.parametrize("runner", ["history_store", "installed"])
async def test_ids_given_to_as_tool_on_chat_are_refused_before_the_run(
    store: HistoryStore,
    stub: StubModelServer,
    openai_client: AsyncOpenAI,
    option: str,
    runner: str,
) -> None:
    helper = chat(openai_client, "helper")
    lead = chat(openai_client, "lead", tools=[helper.as_tool("ask", "Ask.", **{option: "x_1"})])
    if runner == "installed":
        history_store.install(store)
    try:
        run = Runner.run if runner == "history_store" else agents.Runner.run
        with pytest.raises(ServerManagedStateError, match=f"{option} given to the tool 'ask'"):
            await run(lead, "go", store=store)  # type: ignore[operator]
    finally:
        history_store.uninstall()
    assert stub.requests == []


async def test_a_nested_refusal_under_install_ends_the_run_instead_of_reaching_the_model(
    installed: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    helper = chat(openai_client, "helper")

    @function_tool
    async def consult(question: str) -> str:
        """Ask the helper, continuing its server-side conversation."""
        result = await agents.Runner.run(helper, question, previous_response_id="resp_9")
        return str(result.final_output)

    lead = chat(openai_client, "lead", tools=[consult])
    stub.script(ToolCall("consult", '{"question": "q"}'))
    with pytest.raises(ServerManagedStateError, match="agent 'helper' runs on"):
        await agents.Runner.run(lead, "go", session_id="nested")
    # One request: the lead's. The refusal never became a tool error the model was sent.
    assert len(stub.requests) == 1
    assert [row[1] for row in await turn_rows(installed, "nested")] == ["failed"]


# -- 5. failed and blocked turns -------------------------------------------------------------


async def test_a_blocked_input_is_kept_for_audit_and_never_sent_again(
    store: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    seen: list[str] = []

    @input_guardrail(run_in_parallel=False)
    async def no_card_numbers(context: Any, agent: Any, given: Any) -> GuardrailFunctionOutput:
        seen.append(str(given))
        return GuardrailFunctionOutput(output_info=None, tripwire_triggered="4111" in str(given))

    agent = chat(openai_client, input_guardrails=[no_card_numbers])
    with pytest.raises(InputGuardrailTripwireTriggered):
        await Runner.run(agent, "My card is 4111 1111.", store=store, session_id="g")
    assert stub.requests == []
    result = await Runner.run(agent, "What are your hours?", store=store, session_id="g")
    assert result.final_output.startswith("reply 1: saw 1 messages")
    assert stub.requests[0].texts() == ["What are your hours?"]
    assert "4111" not in seen[-1]  # the guardrail was not shown the blocked input again
    assert [row[:2] for row in await turn_rows(store, "g")] == [(1, "blocked"), (2, "completed")]
    assert (1, "user", "message", "My card is 4111 1111.") in await stored_rows(store, "g")


async def test_a_failure_after_a_tool_call_then_a_retry_sends_the_input_once(
    store: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    @function_tool
    def lookup(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    agent = chat(openai_client, tools=[lookup])
    stub.script(ToolCall("lookup", '{"city": "Oslo"}'), Failure(500))
    with pytest.raises(APIStatusError):
        await Runner.run(agent, "Weather in Oslo?", store=store, session_id="r")
    result = await Runner.run(agent, "Weather in Oslo?", store=store, session_id="r")
    assert stub.requests[-1].texts() == ["Weather in Oslo?"]
    assert result.final_output == "reply 3: saw 1 messages; last user said: Weather in Oslo?"
    statuses = await turn_rows(store, "r")
    assert [row[:2] for row in statuses] == [(1, "failed"), (2, "completed")]
    rows = await stored_rows(store, "r")
    assert [row[:3] for row in rows] == [
        (1, "user", "message"),
        (1, None, "function_call"),
        (1, None, "function_call_output"),
        (2, "user", "message"),
        (2, "assistant", "message"),
    ]
    # The failed turn's one answered request is its usage.
    assert statuses[0][4] == 1


async def test_fifteen_failed_turns_leave_nothing_in_later_requests(
    store: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    agent = chat(openai_client)
    await Runner.run(agent, "My name is Ada.", store=store, session_id="f")
    stub.script(*[Failure(503)] * 15)
    for number in range(15):
        with pytest.raises(APIStatusError):
            await Runner.run(agent, f"attempt {number}", store=store, session_id="f")
    await Runner.run(agent, "What is my name?", store=store, session_id="f")
    assert users(stub.requests[-1].texts()) == ["My name is Ada.", "What is my name?"]
    statuses = [row[1] for row in await turn_rows(store, "f")]
    assert statuses == ["completed", *["failed"] * 15, "completed"]
    assert len(await stored_rows(store, "f")) == 2 + 15 + 2  # every input kept for audit


async def test_a_streamed_failure_is_recorded_as_failed(
    store: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    agent = chat(openai_client)
    stub.script(Failure(500))
    streamed = Runner.run_streamed(agent, "hello", store=store, session_id="s")
    with pytest.raises(APIStatusError):
        async for _ in streamed.stream_events():
            pass
    streamed = Runner.run_streamed(agent, "hello again", store=store, session_id="s")
    async for _ in streamed.stream_events():
        pass
    assert users(stub.requests[-1].texts()) == ["hello again"]
    assert [row[:2] for row in await turn_rows(store, "s")] == [(1, "failed"), (2, "completed")]


# -- 6. conflicts ----------------------------------------------------------------------------


async def test_session_id_with_server_state_on_responses_is_the_sdks_error(
    store: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    agent = Agent(name="r", model=OpenAIResponsesModel("stub-model", openai_client))
    with pytest.raises(UserError, match="Session persistence cannot be combined"):
        await Runner.run(agent, "hi", store=store, session_id="s", previous_response_id="r_1")
    assert stub.requests == []


# -- 7. custom models ------------------------------------------------------------------------


class Wrapper(Model):
    """A user's model that adds something around a Chat Completions model."""

    def __init__(self, wrapped: Model) -> None:
        self.wrapped_model = wrapped

    async def get_response(self, *args: Any, **kwargs: Any) -> Any:
        return await self.wrapped_model.get_response(*args, **kwargs)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        return self.wrapped_model.stream_response(*args, **kwargs)


async def test_a_wrapper_exposing_its_model_is_seen_through(
    store: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    agent = Agent(
        name="wrapped", model=Wrapper(OpenAIChatCompletionsModel("stub-model", openai_client))
    )
    with pytest.raises(ServerManagedStateError, match="'wrapped' runs on OpenAIChatCompletions"):
        await Runner.run(agent, "hi", store=store, previous_response_id="resp_1")
    assert stub.requests == []
    await Runner.run(agent, "My name is Ada.", store=store, session_id="w")
    await Runner.run(agent, "And?", store=store, session_id="w")
    assert users(stub.requests[1].texts()) == ["My name is Ada.", "And?"]


async def test_a_declared_model_class_counts_as_chat_completions(
    store: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    class Opaque(Model):
        """Talks to a Chat Completions server through a model it does not expose."""

        def __init__(self) -> None:
            self._impl = OpenAIChatCompletionsModel("stub-model", openai_client)

        async def get_response(self, *args: Any, **kwargs: Any) -> Any:
            return await self._impl.get_response(*args, **kwargs)

        def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            return self._impl.stream_response(*args, **kwargs)

    agent = Agent(name="opaque", model=Opaque())
    undeclared = await Runner.run(agent, "hi", store=store)
    assert session_used(undeclared) is None
    assert declare_chat_completions(Opaque) is Opaque
    with pytest.raises(ServerManagedStateError, match="'opaque' runs on Opaque"):
        await Runner.run(agent, "hi", store=store, previous_response_id="resp_1")
    assert len(stub.requests) == 1
    declared = await Runner.run(agent, "hi", store=store)
    assert session_used(declared) is not None


# -- turns: status and usage -----------------------------------------------------------------


async def test_a_completed_turn_records_its_agent_model_and_reported_usage(
    store: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    agent = chat(openai_client, "assistant")
    result = await Runner.run(agent, "hello", store=store, session_id="u")
    usage = result.context_wrapper.usage
    assert usage.requests == 1 and usage.total_tokens > 0
    assert await turn_rows(store, "u") == [
        (
            1,
            "completed",
            "assistant",
            "stub-model",
            usage.requests,
            usage.input_tokens,
            usage.output_tokens,
            usage.total_tokens,
        )
    ]
    engine = await store.engine()
    async with engine.connect() as connection:
        started, finished = (
            await connection.execute(
                text("SELECT started_at, finished_at FROM hs_turns WHERE session_id = 'u'")
            )
        ).one()
        statuses = await connection.execute(
            text("SELECT DISTINCT status FROM hs_messages WHERE session_id = 'u'")
        )
        assert [row[0] for row in statuses] == ["completed"]
    assert started is not None and finished is not None and str(started) <= str(finished)


async def test_an_interrupted_turn_completes_when_its_run_state_is_resumed(
    store: HistoryStore, stub: StubModelServer, openai_client: AsyncOpenAI
) -> None:
    @function_tool(needs_approval=True)
    def refund(order: str) -> str:
        """Refund an order."""
        return f"refunded {order}"

    agent = chat(openai_client, tools=[refund])
    stub.script(ToolCall("refund", '{"order": "7"}'), "Refund done.")
    paused = await Runner.run(agent, "Refund order 7", store=store, session_id="hitl")
    assert paused.interruptions
    assert [row[:2] for row in await turn_rows(store, "hitl")] == [(1, "interrupted")]
    state = paused.to_state()
    state.approve(paused.interruptions[0])
    resumed = await Runner.run(agent, state, store=store, session_id="hitl")
    assert resumed.final_output == "Refund done."
    rows = await turn_rows(store, "hitl")
    assert [row[:2] for row in rows] == [(1, "completed")]
    assert rows[0][4] == resumed.context_wrapper.usage.requests
    assert {row[0] for row in await stored_rows(store, "hitl")} == {1}


def test_run_sync_records_the_turn(
    stub: StubModelServer, openai_client: AsyncOpenAI, sqlite_url: str
) -> None:
    import asyncio

    store = HistoryStore(sqlite_url)
    agent = chat(openai_client)
    Runner.run_sync(agent, "hello", store=store, session_id="sync")
    stub.script(Failure(500))
    with pytest.raises(APIStatusError):
        Runner.run_sync(agent, "again", store=store, session_id="sync")
    loop = asyncio.get_event_loop_policy().get_event_loop()
    rows = loop.run_until_complete(turn_rows(store, "sync"))
    loop.run_until_complete(store.close())
    assert [row[:2] for row in rows] == [(1, "completed"), (2, "failed")]


async def test_revision_0003_back_fills_existing_turns_as_completed(db_url: str) -> None:
    from history_store import schema
    from history_store._engine import make_engine, resolve_url

    await schema.upgrade(db_url, "0002")
    engine = make_engine(resolve_url(db_url))
    try:
        at = datetime(2026, 1, 1, 10, tzinfo=timezone.utc)
        async with engine.begin() as connection:
            await connection.execute(
                tables.sessions.insert().values(
                    session_id="old", created_at=at, updated_at=at, item_count=3,
                    turn_count=2, last_seq=3,
                )
            )  # fmt: skip
            await connection.execute(
                tables.items.insert(),
                [
                    {"session_id": "old", "seq": seq, "turn": turn, "role": role,
                     "item_type": "message", "text": "x", "item": "{}",
                     "created_at": at + timedelta(minutes=seq)}
                    for seq, turn, role in ((1, 1, "user"), (2, 1, "assistant"), (3, 2, "user"))
                ],
            )  # fmt: skip
    finally:
        await engine.dispose()
    await schema.upgrade(db_url)
    async with HistoryStore(db_url) as store:
        assert [row[:2] for row in await turn_rows(store, "old")] == [
            (1, "completed"),
            (2, "completed"),
        ]
        assert {row[4:] for row in await turn_rows(store, "old")} == {(None, None, None, None)}
        assert len(await stored_rows(store, "old")) == 3
    await schema.downgrade(db_url, "0002")  # the table goes, every item stays
    await schema.upgrade(db_url)
