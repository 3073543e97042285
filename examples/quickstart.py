"""The README's example: Chat Completions history kept by history_store.

Runs against OpenAI (or ``OPENAI_BASE_URL``, e.g. a local Ollama) when ``OPENAI_API_KEY`` is
set, else offline against the loopback stub model::

    .venv/bin/python examples/quickstart.py
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from agents import Agent, OpenAIChatCompletionsModel, set_tracing_disabled
from openai import AsyncOpenAI

from history_store import HistoryStore, Runner, ServerManagedStateError, session_used
from history_store.testing import StubModelServer


async def main(client: AsyncOpenAI, model: str, database: Path) -> None:
    agent = Agent(name="assistant", model=OpenAIChatCompletionsModel(model, client))
    async with HistoryStore(f"sqlite+aiosqlite:///{database}") as store:
        await Runner.run(agent, "My name is Ada.", store=store, session_id="ada")
        result = await Runner.run(agent, "What is my name?", store=store, session_id="ada")
        print(result.final_output)  # the second request carried the first turn
        print("session:", session_used(result))
        try:
            await Runner.run(agent, "What is my name?", previous_response_id="resp_1")
        except ServerManagedStateError as error:
            print("refused:", error)


if __name__ == "__main__":
    set_tracing_disabled(True)
    with tempfile.TemporaryDirectory() as directory:
        database = Path(directory) / "history.db"
        if os.environ.get("OPENAI_API_KEY"):
            model = os.environ.get("HISTORY_STORE_DEMO_MODEL", "gpt-4o-mini")
            asyncio.run(main(AsyncOpenAI(), model, database))
        else:
            with StubModelServer() as stub:
                offline = AsyncOpenAI(base_url=stub.base_url, api_key="offline", max_retries=0)
                asyncio.run(main(offline, "stub-model", database))
