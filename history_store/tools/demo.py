"""The demo behind ``make demo`` / ``history-store demo``.

Three turns on a Chat Completions model through :class:`history_store.Runner`, which attaches
the history by itself; then the guard refusing a ``previous_response_id`` the model would have
dropped; offline, a long conversation with a model of a small context, first without a
token budget (it fails once the history outgrows the context) and then with one (every turn
answered, every item kept); then the stored history, read back with plain SQL; last, the
command that opens it in the web viewer. The database is kept for that
(``./demo-history.db`` unless told otherwise), and replaced by the next run so each run
starts from nothing.

Offline by default: the model is the loopback :class:`~history_store.testing.StubModelServer`,
whose replies say how many messages it was sent. With ``OPENAI_API_KEY`` set it talks to
OpenAI instead, or to ``OPENAI_BASE_URL`` (a local Ollama, vLLM...), with the model named by
``HISTORY_STORE_DEMO_MODEL`` (default ``gpt-4o-mini``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from agents import Agent, OpenAIChatCompletionsModel, set_tracing_disabled
from openai import AsyncOpenAI, BadRequestError

from ..budget.context import ContextBudget
from ..errors import ServerManagedStateError
from ..runner.run import Runner
from ..store import HistoryStore
from ..testing import StubModelServer

__all__ = [
    "run_demo",
    "DEMO_DATABASE",
    "DEMO_MODEL_ENV",
    "DEFAULT_DEMO_MODEL",
    "TURNS",
    "SMALL_CONTEXT",
    "LONG_TURNS",
]

DEMO_DATABASE = Path("demo-history.db")
"""Where the demo keeps its history (relative to the current directory)."""

DEMO_MODEL_ENV = "HISTORY_STORE_DEMO_MODEL"
DEFAULT_DEMO_MODEL = "gpt-4o-mini"
TURNS = ("My name is Ada and I like chess.", "What is my name?", "And what do I like?")
HISTORY_SQL = "SELECT turn, seq, role, text FROM hs_items WHERE session_id = ? ORDER BY seq"
SMALL_CONTEXT = 512
"""The context, in tokens, of the small model of the budget part."""
LONG_TURNS = 40


@contextlib.contextmanager
def _model_client() -> Iterator[tuple[AsyncOpenAI, str, str]]:
    """The client, model name and a description of where requests go."""
    if os.environ.get("OPENAI_API_KEY"):
        # AsyncOpenAI reads OPENAI_API_KEY and OPENAI_BASE_URL itself.
        client = AsyncOpenAI()
        yield client, os.environ.get(DEMO_MODEL_ENV, DEFAULT_DEMO_MODEL), str(client.base_url)
        return
    with StubModelServer() as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="offline", max_retries=0)
        yield client, "stub-model", f"the offline stub model at {server.base_url}"


def _print_history(database: Path, session_id: str, out: Callable[[str], object]) -> None:
    query = HISTORY_SQL.replace("?", f"'{session_id}'")
    out(f'\n$ sqlite3 {database.name} "{query}"')
    with contextlib.closing(sqlite3.connect(database)) as connection:
        rows = connection.execute(HISTORY_SQL, (session_id,)).fetchall()
    out(f"{'turn':>4}  {'seq':>3}  {'role':<9}  text")
    for turn, seq, role, text in rows:
        shown = (text or "").replace("\n", " ")
        out(f"{turn:>4}  {seq:>3}  {role or '-':<9}  {shown[:70]}")


async def _long_conversation(
    store: HistoryStore, database: Path, out: Callable[[str], object]
) -> None:
    """:data:`LONG_TURNS` turns with a model of :data:`SMALL_CONTEXT` tokens, without a
    budget and then with one."""
    out(f"\nA long conversation with a model of a {SMALL_CONTEXT}-token context:")
    with StubModelServer(max_context_tokens=SMALL_CONTEXT) as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="offline", max_retries=0)
        agent = Agent(name="assistant", model=OpenAIChatCompletionsModel("small-model", client))
        for turn in range(1, LONG_TURNS + 1):
            try:
                await Runner.run(
                    agent, f"Note {turn}: remember it.", store=store, session_id="long"
                )
            except BadRequestError as error:
                out(f"  without a budget, turn {turn} fails: HTTP 400 {error.code}")
                break
        budget = ContextBudget(SMALL_CONTEXT)
        for turn in range(1, LONG_TURNS + 1):
            text = f"Note {turn}: remember it."
            await Runner.run(agent, text, store=store, session_id="budgeted", budget=budget)
        window = await store.session("budgeted", budget=budget).window()
        stored = len(await store.session("budgeted").get_items(limit=10**6))
        out(
            f"  with ContextBudget({SMALL_CONTEXT}): all {LONG_TURNS} turns answered; the next "
            f"request carries the newest {len(window.items)} of the {stored} stored items "
            f"({sum(window.tokens)} tokens). See them with:\n    history-store --url "
            f"sqlite:///{database} show budgeted --window --max-input-tokens {SMALL_CONTEXT}"
        )
        await client.close()


def _replace(database: Path) -> None:
    """Remove an earlier run's database (and its WAL files), so this run starts empty."""
    for suffix in ("", "-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)


async def run_demo(
    print_line: Callable[[str], object] = print, database: Path = DEMO_DATABASE
) -> None:
    """Run the demo, printing through ``print_line``, keeping the history in ``database``
    (replaced if it exists)."""
    out = print_line
    set_tracing_disabled(True)
    database = database.resolve()
    _replace(database)
    with _model_client() as (client, name, where):
        agent = Agent(
            name="assistant",
            instructions="Answer in one short sentence.",
            model=OpenAIChatCompletionsModel(name, client),
        )
        out(f"Model: {name} over Chat Completions, via {where}")
        out(f"History: {database} (SQLite; the next demo run replaces it)\n")
        async with HistoryStore(f"sqlite+aiosqlite:///{database}") as store:
            for text in TURNS:
                # No session passed: the runner sees a Chat Completions model and attaches
                # store.session("demo") so each turn carries the earlier ones.
                result = await Runner.run(agent, text, store=store, session_id="demo")
                out(f"user:      {text}\nassistant: {result.final_output}")

            out("\nNow the same model with previous_response_id, the server-side way:")
            try:
                await Runner.run(agent, "What is my name?", previous_response_id="resp_123")
            except ServerManagedStateError as refusal:
                out(f"refused before any request: {refusal}")
            if not os.environ.get("OPENAI_API_KEY"):
                await _long_conversation(store, database, out)
        _print_history(database, "demo", out)
    out("\nBrowse it in a web browser (read-only; Ctrl-C stops it):")
    out(f"  history-store serve --url sqlite:///{database}")
