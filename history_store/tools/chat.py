"""``history-store chat``: an interactive conversation kept in a history database.

Each line read is one turn; the reply is printed as ``assistant: ...``. The history lives in
the session, so stopping and starting ``chat`` again with the same ``--session`` continues
the conversation.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from agents import Agent, OpenAIChatCompletionsModel, set_tracing_disabled
from openai import APIError, AsyncOpenAI

from ..errors import ConfigurationError
from ..runner.run import Runner
from ._open import Database, writing

__all__ = ["chat", "DEFAULT_CHAT_MODEL", "EXIT_COMMANDS"]

DEFAULT_CHAT_MODEL = "gpt-4o-mini"
EXIT_COMMANDS = frozenset({"/exit", "/quit"})


def _client(base_url: str | None, api_key: str | None) -> AsyncOpenAI:
    key = api_key or os.environ.get("OPENAI_API_KEY")
    if key is None and base_url is None:
        raise ConfigurationError(
            "no API key: set OPENAI_API_KEY, or pass --base-url for a server that needs none"
        )
    return AsyncOpenAI(base_url=base_url, api_key=key or "unused", max_retries=0)


async def chat(
    url: Database = None,
    *,
    session_id: str = "chat",
    model: str = DEFAULT_CHAT_MODEL,
    base_url: str | None = None,
    api_key: str | None = None,
    instructions: str | None = None,
    input: TextIO | None = None,
    output: TextIO | None = None,
) -> int:
    """Talk to ``model`` (Chat Completions) line by line until end of input or ``/exit``.

    The history is kept in session ``session_id`` of the database at ``url``. A failed
    request is reported on stderr and the conversation goes on. Returns the number of turns
    that got a reply. Tracing is disabled when ``base_url`` points at a non-OpenAI server.
    """
    source = input if input is not None else sys.stdin
    sink = output if output is not None else sys.stdout
    client = _client(base_url, api_key)
    if base_url is not None:
        set_tracing_disabled(True)
    agent = Agent(
        name="history-store chat",
        instructions=instructions,
        model=OpenAIChatCompletionsModel(model, client),
    )
    interactive = source.isatty()
    turns = 0
    async with writing(url) as store:
        session = store.session(session_id)
        while True:
            if interactive:
                sink.write("you> ")
                sink.flush()
            line = source.readline()
            if not line or line.strip() in EXIT_COMMANDS:
                break
            if not line.strip():
                continue
            try:
                result = await Runner.run(agent, line.rstrip("\n"), session=session)
            except APIError as exc:
                print(f"error: the model request failed: {exc}", file=sys.stderr)
                continue
            sink.write(f"assistant: {result.final_output}\n")
            sink.flush()
            turns += 1
    await client.close()
    return turns
