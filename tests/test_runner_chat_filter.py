"""Items a Chat Completions model cannot take are left out of what it is sent, never deleted."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from agents import Agent, OpenAIChatCompletionsModel, RunConfig
from agents import Runner as SDKRunner
from agents.exceptions import UserError
from agents.items import TResponseInputItem
from agents.models.chatcmpl_converter import Converter
from openai import AsyncOpenAI

from history_store import HistoryStore, Runner
from history_store.runner.chat_history import (
    _is_plain_message,
    chat_completions_accepts,
    filter_history_for_chat,
)
from history_store.testing import StubModelServer

WEB_SEARCH: dict[str, Any] = {
    "type": "web_search_call",
    "id": "ws_1",
    "status": "completed",
    "action": {"type": "search", "query": "weather in Paris"},
}
EARLIER: list[dict[str, Any]] = [
    {"role": "user", "content": "What is the weather in Paris?"},
    WEB_SEARCH,
    {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Sunny, 21 C.", "annotations": []}],
    },
]

SAMPLES: list[dict[str, Any]] = [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello"},
    {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "x"}]},
    EARLIER[2],
    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "c1", "output": "done"},
    {"type": "function_call_output", "output": "no call id"},
    {"type": "reasoning", "id": "rs_1", "summary": []},
    {"type": "file_search_call", "id": "fs_1", "queries": ["q"], "status": "completed"},
    WEB_SEARCH,
    {"type": "computer_call", "id": "cu_1", "call_id": "c2", "action": {"type": "screenshot"}},
    {"type": "mcp_list_tools", "id": "mcp_1", "server_label": "s", "tools": []},
    {"type": "item_reference", "id": "msg_0"},
    {"type": "compaction", "encrypted_content": "..."},
    {"type": "image_generation_call", "id": "ig_1", "status": "completed", "result": None},
]


def converter_accepts(item: dict[str, Any]) -> bool:
    try:
        Converter.items_to_messages([item])  # type: ignore[list-item]
    except UserError:
        return False
    return True


@pytest.mark.parametrize(
    "item", SAMPLES, ids=lambda item: str(item.get("type") or item.get("role"))
)
def test_predicate_agrees_with_the_sdk_converter(item: dict[str, Any]) -> None:
    assert chat_completions_accepts(item) is converter_accepts(item)


@pytest.mark.parametrize(
    "item", SAMPLES + EARLIER, ids=lambda item: str(item.get("type") or item.get("role"))
)
def test_the_plain_message_shortcut_only_passes_what_the_converter_takes(
    item: dict[str, Any],
) -> None:
    if _is_plain_message(item):
        assert converter_accepts(item)


def test_the_plain_message_shortcut_sees_ordinary_turns() -> None:
    assert [_is_plain_message(item) for item in EARLIER] == [True, False, True]


def test_filter_drops_rejected_items_and_orphan_tool_outputs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    history: list[Any] = [
        *EARLIER,
        {"type": "function_call_output", "call_id": "cut_off", "output": "late"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "done"},
    ]
    with caplog.at_level(logging.DEBUG, logger="history_store"):
        kept = filter_history_for_chat(history, "agent 'chat'")
    expected = [history[0], history[2], history[4], history[5]]
    assert kept == expected
    assert all(a is b for a, b in zip(kept, expected, strict=True))
    assert caplog.messages == [
        "agent 'chat': not sending 2 item(s) a Chat Completions model cannot take "
        "(function_call_output x1, web_search_call x1); they are kept"
    ]


def test_filter_drops_a_call_whose_output_never_came() -> None:
    call = {"type": "function_call", "call_id": "c9", "name": "f", "arguments": "{}"}
    history: list[Any] = [{"role": "user", "content": "go"}, call, {"role": "user", "content": "?"}]
    assert filter_history_for_chat(history, "agent 'chat'") == [history[0], history[2]]


async def test_chat_turn_after_a_responses_turn_skips_web_search_call(
    stub: StubModelServer, openai_client: AsyncOpenAI, sqlite_url: str
) -> None:
    agent = Agent(name="chat", model=OpenAIChatCompletionsModel("stub-model", openai_client))
    async with HistoryStore(sqlite_url) as store:
        session = store.session("shared")
        # What an earlier Responses agent with the web search tool left in the session.
        await session.add_items(EARLIER)  # type: ignore[arg-type]

        with pytest.raises(UserError, match="Unhandled item type"):
            await SDKRunner.run(agent, "And tomorrow?", session=session)
        assert stub.requests == []
        await session.pop_item()  # the SDK stored the failed turn's input; take it back

        result = await Runner.run(agent, "And tomorrow?", session=session)
        stored = await session.get_items()
    assert stub.requests[0].texts() == [
        "What is the weather in Paris?",
        "Sunny, 21 C.",
        "And tomorrow?",
    ]
    assert result.final_output == "reply 1: saw 3 messages; last user said: And tomorrow?"
    assert stored[:3] == EARLIER
    assert [item.get("role") for item in stored[3:]] == ["user", "assistant"]


async def test_callers_session_input_callback_gets_the_stored_history(
    stub: StubModelServer, openai_client: AsyncOpenAI, sqlite_url: str
) -> None:
    seen: list[list[TResponseInputItem]] = []

    def last_two(
        history: list[TResponseInputItem], new: list[TResponseInputItem]
    ) -> list[TResponseInputItem]:
        seen.append(list(history))
        return history[-2:] + new

    agent = Agent(name="chat", model=OpenAIChatCompletionsModel("stub-model", openai_client))
    config = RunConfig(session_input_callback=last_two)
    async with HistoryStore(sqlite_url) as store:
        await store.session("s").add_items(EARLIER)  # type: ignore[arg-type]
        await Runner.run(agent, "And tomorrow?", store=store, session_id="s", run_config=config)
        assert len(await store.session("s").get_items()) == 5
    # The SDK's own rules: the caller's callback sees the history as stored; what the model
    # cannot take is left out of the request itself.
    assert seen == [EARLIER]
    assert stub.requests[0].texts() == ["Sunny, 21 C.", "And tomorrow?"]
    assert config.session_input_callback is last_two  # the caller's config is not modified
