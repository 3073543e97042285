"""The offline demo behind ``make demo`` / ``history-store demo``."""

from __future__ import annotations

import tempfile
from pathlib import Path

from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
from openai import AsyncOpenAI

from .store import HistoryStore
from .testing import StubModelServer


async def run_demo(print_line: object = print) -> None:
    """A three-turn conversation on a Chat Completions model, history kept in SQLite."""
    out = print_line if callable(print_line) else print
    set_tracing_disabled(True)
    with tempfile.TemporaryDirectory() as directory, StubModelServer() as server:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'demo.db'}"
        client = AsyncOpenAI(base_url=server.base_url, api_key="offline", max_retries=0)
        agent = Agent(name="demo", model=OpenAIChatCompletionsModel("stub-model", client))
        async with HistoryStore(url) as store:
            session = store.session("demo")
            for text in ("My name is Ada.", "What is my name?", "Thanks!"):
                result = await Runner.run(agent, text, session=session)
                out(f"user: {text}\nmodel: {result.final_output}")
            out(f"stored items: {len(await session.get_items())}")
