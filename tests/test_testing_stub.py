"""The stub model server is as strict as OpenAI's: context length and tool-call pairing, with
OpenAI's error bodies, plain and streamed, on both APIs, through the real ``openai`` client.

Token counts follow the rule ``StubModelServer.count_request_tokens`` states: with the default
estimate, each message costs 4 tokens plus ceil(characters / 4) of its text. The figures
below are worked out from that rule by hand, so a change of rule fails here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import agents
import openai
import pytest
from agents import Agent, OpenAIChatCompletionsModel, OpenAIResponsesModel, function_tool
from openai import AsyncOpenAI, OpenAI

from history_store import InvalidArgumentError
from history_store.testing import Reply, StubModelServer, ToolCall, Usage

# 40 + 41 characters: (4 + 10) + (4 + 11) = 29 tokens.
SYSTEM, USER = "s" * 40, "u" * 41
CHAT = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
COUNTED = 29


def client_for(server: StubModelServer) -> OpenAI:
    return OpenAI(base_url=server.base_url, api_key="stub-key", max_retries=0)


@pytest.fixture
def limited() -> Iterator[StubModelServer]:
    """A server whose context holds 28 tokens: one fewer than CHAT costs."""
    with StubModelServer(max_context_tokens=COUNTED - 1) as server:
        yield server


def chat(client: OpenAI, messages: list[dict[str, Any]], *, stream: bool, **extra: Any) -> Any:
    """The usage of a Chat request, or what the stream ended with."""
    if not stream:
        return client.chat.completions.create(model="m", messages=messages, **extra).usage
    chunks = list(
        client.chat.completions.create(model="m", messages=messages, stream=True, **extra)
    )
    return chunks[-1].usage


def respond(client: OpenAI, *, stream: bool, **request: Any) -> Any:
    """The usage of a Responses request (streamed: of its ``response.completed``)."""
    if not stream:
        return client.responses.create(model="m", **request).usage
    events = list(client.responses.create(model="m", stream=True, **request))
    assert events[-1].type == "response.completed"
    return events[-1].response.usage


# --- usage is the count ---------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_chat_usage_reports_the_counted_input(stub: StubModelServer, stream: bool) -> None:
    usage = chat(client_for(stub), CHAT, stream=stream)
    longer = chat(client_for(stub), [*CHAT, {"role": "user", "content": "x" * 8}], stream=stream)
    assert stub.count_request_tokens(stub.requests[0].body) == COUNTED
    assert usage.prompt_tokens == COUNTED
    assert longer.prompt_tokens == COUNTED + 4 + 2  # one more message of 8 characters
    # The reply "reply 1: saw 2 messages; last user said: uuu..." is counted by the same rule.
    reply = f"reply 1: saw 2 messages; last user said: {USER}"
    assert usage.completion_tokens == -(-len(reply) // 4)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_responses_usage_counts_instructions_and_input(stub: StubModelServer, stream: bool) -> None:
    usage = respond(client_for(stub), stream=stream, instructions=SYSTEM, input=USER)
    items = respond(
        client_for(stub),
        stream=stream,
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": USER}]},
            {"type": "function_call", "call_id": "c1", "name": "abcd", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "12345678"},
        ],
    )
    assert usage.input_tokens == COUNTED  # instructions count as one system message
    # (4 + 11) + (4 + 1 + 1) + (4 + 2): the call's name and arguments, the output's text.
    assert items.input_tokens == 27


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_token_scale_makes_the_server_count_more_than_the_estimate(stream: bool) -> None:
    with StubModelServer(token_scale=1.3) as server:
        usage = chat(client_for(server), CHAT, stream=stream)
    assert usage.prompt_tokens == 38  # ceil(29 * 1.3)


def test_a_counter_given_by_the_test_is_the_rule() -> None:
    class Words:
        def count_text(self, text: str) -> int:
            return len(text.split())

        def count_item(self, item: Mapping[str, Any]) -> int:
            return 1 + self.count_text(str(item.get("content") or ""))

    with StubModelServer(counter=Words(), max_context_tokens=4) as server:
        fits = chat(
            client_for(server), [{"role": "user", "content": "one two three"}], stream=False
        )
        with pytest.raises(openai.BadRequestError):
            chat(
                client_for(server),
                [{"role": "user", "content": "one two three four"}],
                stream=False,
            )
    assert fits.prompt_tokens == 4


def test_a_scripted_usage_is_reported_as_given(stub: StubModelServer) -> None:
    stub.script(Reply("hi", usage=Usage(1000, 7)), ToolCall("f", usage=Usage(5, 1)))
    first = chat(client_for(stub), CHAT, stream=False)
    second = respond(client_for(stub), stream=True, input=USER)
    assert stub.requests[0].input_tokens == COUNTED  # the count is still recorded
    assert (first.prompt_tokens, first.completion_tokens, first.total_tokens) == (1000, 7, 1007)
    assert (second.input_tokens, second.output_tokens) == (5, 1)


def test_options_out_of_range_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="max_context_tokens"):
        StubModelServer(max_context_tokens=0)
    with pytest.raises(InvalidArgumentError, match="token_scale"):
        StubModelServer(token_scale=0)


# --- context length ---------------------------------------------------------------------


def context_body(limit: int, counted: int) -> dict[str, Any]:
    return {
        "error": {
            "message": f"This model's maximum context length is {limit} tokens. However, your "
            f"messages resulted in {counted} tokens. Please reduce the length of the messages.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }


RESPONSES_CONTEXT = {
    "message": "Your input exceeds the context window of this model. "
    "Please adjust your input and try again.",
    "type": "invalid_request_error",
    "param": "input",
    "code": "context_length_exceeded",
}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_chat_over_the_limit_answers_openais_400(limited: StubModelServer, stream: bool) -> None:
    limited.script("kept for the next request")
    with pytest.raises(openai.BadRequestError) as caught:
        chat(client_for(limited), CHAT, stream=stream)  # streamed: before any event
    assert caught.value.status_code == 400
    assert caught.value.response.json() == context_body(28, 29)
    assert caught.value.code == "context_length_exceeded"
    # Exactly at the limit fits, and gets the reply the rejected request did not use up.
    at_limit = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "u" * 40}]
    client_for(limited).chat.completions.create(model="m", messages=at_limit)
    assert [r.error for r in limited.requests] == [context_body(28, 29), None]
    assert limited.requests[1].usage == Usage(28, 7)  # "kept for the next request": 25 chars


def test_chat_counts_the_completion_it_asks_for(limited: StubModelServer) -> None:
    fits = [{"role": "user", "content": "u" * 40}]  # 14 tokens
    with pytest.raises(openai.BadRequestError) as caught:
        chat(client_for(limited), fits, stream=True, max_completion_tokens=15)
    assert caught.value.response.json()["error"] == {
        "message": "This model's maximum context length is 28 tokens. However, you requested "
        "29 tokens (14 in the messages, 15 in the completion). Please reduce the length of the "
        "messages or completion.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
    chat(client_for(limited), fits, stream=False, max_tokens=14)


def test_responses_over_the_limit_answers_400(limited: StubModelServer) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        respond(client_for(limited), stream=False, instructions=SYSTEM, input=USER)
    assert caught.value.response.json() == {"error": RESPONSES_CONTEXT}


def test_responses_streamed_over_the_limit_fails_in_the_stream(limited: StubModelServer) -> None:
    seen = []
    stream = client_for(limited).responses.create(
        model="m", instructions=SYSTEM, input=USER, stream=True
    )
    assert stream.response.status_code == 200  # as OpenAI: the failure is an event
    with pytest.raises(openai.APIError) as caught:
        seen.extend(event.type for event in stream)
    assert seen == ["response.created", "response.in_progress"]
    assert not isinstance(caught.value, openai.APIStatusError)
    assert (caught.value.code, caught.value.type, caught.value.param) == (
        "context_length_exceeded",
        "invalid_request_error",
        "input",
    )
    assert caught.value.message == RESPONSES_CONTEXT["message"]


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_the_sdk_sees_the_context_error_on_both_apis(api: str) -> None:
    with StubModelServer(max_context_tokens=10) as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        model = (
            OpenAIChatCompletionsModel("m", client)
            if api == "chat"
            else OpenAIResponsesModel("m", client)
        )
        agent = Agent(name="a", instructions=SYSTEM, model=model)
        with pytest.raises(openai.BadRequestError) as caught:
            await agents.Runner.run(agent, USER)
    assert caught.value.code == "context_length_exceeded"


# --- tool-call pairing: Chat Completions --------------------------------------------------


def asks(*ids: str) -> dict[str, Any]:
    calls = [
        {"id": i, "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in ids
    ]
    return {"role": "assistant", "content": None, "tool_calls": calls}


def answer(call_id: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": "done"}


USER_MSG = {"role": "user", "content": "hi"}
UNANSWERED = (
    "An assistant message with 'tool_calls' must be followed by tool messages responding to "
    "each 'tool_call_id'. The following tool_call_ids did not have response messages: "
)
ORPHAN = (
    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
    "with 'tool_calls'."
)


def pairing_error(message: str, param: str) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": None,
        }
    }


BROKEN_CHATS = {
    "tool without a call": (
        [USER_MSG, answer("call_a")],
        pairing_error(ORPHAN, "messages.[1].role"),
    ),
    "tool after the block closed": (
        [USER_MSG, asks("call_a"), answer("call_a"), USER_MSG, answer("call_a")],
        pairing_error(ORPHAN, "messages.[4].role"),
    ),
    "one of two calls unanswered": (
        [USER_MSG, asks("call_a", "call_b"), answer("call_b"), USER_MSG],
        pairing_error(UNANSWERED + "call_a", "messages.[3].role"),
    ),
    "calls left open at the end": (
        [USER_MSG, asks("call_a", "call_b")],
        pairing_error(UNANSWERED + "call_a, call_b", "messages.[1].role"),
    ),
    "an id of an earlier message": (
        [USER_MSG, asks("call_a"), answer("call_a"), asks("call_b"), answer("call_a")],
        pairing_error(
            "Invalid parameter: 'tool_call_id' of 'call_a' not found in 'tool_calls' of "
            "previous message.",
            "messages.[4].tool_call_id",
        ),
    ),
}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("case", list(BROKEN_CHATS))
def test_chat_refuses_broken_tool_call_pairs(
    stub: StubModelServer, case: str, stream: bool
) -> None:
    messages, expected = BROKEN_CHATS[case]
    with pytest.raises(openai.BadRequestError) as caught:
        chat(client_for(stub), messages, stream=stream)
    assert stub.requests[0].error == expected
    assert caught.value.response.json() == expected


def test_chat_accepts_every_call_answered_in_any_order(stub: StubModelServer) -> None:
    messages = [USER_MSG, asks("call_a", "call_b"), answer("call_b"), answer("call_a"), USER_MSG]
    chat(client_for(stub), messages, stream=False)
    chat(client_for(stub), [*messages, asks("call_c"), answer("call_c")], stream=True)
    assert [r.error for r in stub.requests] == [None, None]


# --- tool-call pairing: Responses ---------------------------------------------------------

CALL = {"type": "function_call", "call_id": "call_a", "name": "f", "arguments": "{}"}
OUTPUT = {"type": "function_call_output", "call_id": "call_a", "output": "done"}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize(
    ("given", "message"),
    [
        ([USER_MSG, CALL], "No tool output found for function call call_a."),
        ([USER_MSG, OUTPUT], "No tool call found for function call output with call_id call_a."),
    ],
    ids=["call without output", "output without call"],
)
def test_responses_refuses_unpaired_function_calls(
    stub: StubModelServer, given: list[dict[str, Any]], message: str, stream: bool
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        respond(client_for(stub), stream=stream, input=given)
    assert caught.value.response.json() == pairing_error(message, "input")


def test_responses_pairs_may_rest_on_server_state(stub: StubModelServer) -> None:
    respond(client_for(stub), stream=False, input=[USER_MSG, CALL, OUTPUT])
    respond(client_for(stub), stream=False, input=[OUTPUT], previous_response_id="resp_1")
    assert [r.error for r in stub.requests] == [None, None]


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_an_sdk_run_with_a_tool_passes_the_pairing_rules(
    stub: StubModelServer, openai_client: AsyncOpenAI, api: str
) -> None:
    @function_tool
    def weather(city: str) -> str:
        """The weather in ``city``."""
        return f"sunny in {city}"

    model = (
        OpenAIChatCompletionsModel("m", openai_client)
        if api == "chat"
        else OpenAIResponsesModel("m", openai_client)
    )
    stub.script(ToolCall("weather", '{"city": "Paris"}'))
    result = await agents.Runner.run(Agent(name="a", model=model, tools=[weather]), "weather?")
    assert [r.error for r in stub.requests] == [None, None]
    assert result.final_output.startswith("reply 2: saw 3 messages")
