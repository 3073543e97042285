"""What the token-budget tests share: the messages they send and the stub's summarizer.

A summarizing request is told apart by the Summarizer's instructions; the stub answers it
with the message numbers the transcript held (``covered 3,4,5``), so a test can tell which
turns each stored summary covers.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agents import Agent, OpenAIChatCompletionsModel
from openai import AsyncOpenAI

from history_store import Summarizer
from history_store.runner.summarizer import DEFAULT_INSTRUCTIONS
from history_store.testing import RecordedRequest, StubModelServer

FILLER = "the quick brown fox jumps over the lazy dog " * 3
SUMMARIZER_MARK = DEFAULT_INSTRUCTIONS[:60]


def message(number: int) -> str:
    return f"message {number}: {FILLER}"


def summarizer_request(request: RecordedRequest) -> bool:
    return SUMMARIZER_MARK in json.dumps(request.body)


def summarize_by_numbers(request: RecordedRequest) -> str | None:
    """The stub summarizer: names the message numbers it was given (else the stub's echo)."""
    if not summarizer_request(request):
        return None
    transcript = request.texts()[-1]
    numbers = re.findall(r"^user: message (\d+):", transcript, re.MULTILINE)
    return "covered " + ",".join(numbers)


def stub_client(server: StubModelServer) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=server.base_url, api_key="stub", max_retries=0)


def agent_on(server: StubModelServer, **options: Any) -> Agent[Any]:
    return Agent(
        name="assistant",
        instructions="Answer briefly.",
        model=OpenAIChatCompletionsModel("stub-model", stub_client(server)),
        **options,
    )


def summarizer_on(server: StubModelServer) -> Summarizer:
    return Summarizer(OpenAIChatCompletionsModel("stub-summarizer", stub_client(server)))
