"""W9: the token budget (issue 13): window latency by history length, per-turn overhead, and
the size of the requests a long budgeted conversation sends.

* **Window latency.** ``await session.window()`` under one :class:`ContextBudget` on sessions
  of each size (bulk-filled with their token counts and running totals, one SQLite file
  each, and one PostgreSQL database holding all of them, analyzed after the fill, when the
  suite's PostgreSQL part is on), interleaved round by round; the growth is the median of
  the per-round ratios of the largest size to the smallest. The window is found by one index
  lookup on ``(session_id, cumulative_tokens)``, so it should cost the same however long the
  history.
* **Per-turn overhead.** A whole ``history_store.Runner.run`` turn against the loopback stub
  on a session of a few earlier items, with a budget large enough to keep all of them and
  without one (the two requests are the same); overhead = median of per-round differences,
  as W8.
* **Bytes per request.** One conversation of N turns through ``history_store.Runner`` with a
  small budget, against a stub that rejects a request over the budget's limit as OpenAI
  would: the bytes of each request body (as the ``openai`` client sent them) and its input
  tokens as the server counted them. Turn N is also run once without the budget on a copy of
  the same N-1 turns of history, for comparison.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from agents import Agent, OpenAIChatCompletionsModel
from openai import AsyncOpenAI, DefaultAsyncHttpxClient
from sqlalchemy.engine import make_url

import history_store
from history_store import ContextBudget, HistoryStore
from history_store.testing import StubModelServer

from .config import Sizes
from .fill import fill_pg, fill_sqlite
from .impls import OURS
from .items import make_batch
from .timing import interleave, median, paired_ratio

WINDOW_BUDGET = 4096
"""The budget the window latency is measured under: about a hundred of the pool's items."""
OVERHEAD_BUDGET = 128_000
"""Large enough for the whole history of an overhead turn: both sides send the same request."""
INSTRUCTIONS = "You are a concise assistant. Answer the user's question about the weather."


def _text(turn: int) -> str:
    return (
        f"Turn {turn}: what is the weather like in city {turn % 97} this week, and should I "
        "pack an umbrella, a light jacket or sunscreen for a three-day trip with a hike?"
    )


async def _window_latency(
    opener: Callable[[int], HistoryStore],
    sizes: tuple[int, ...],
    reads: int,
    rounds: int,
    budget: ContextBudget,
) -> dict[str, Any]:
    """Median µs per ``window()`` per size, and the growth largest / smallest."""
    stores = {size: opener(size) for size in sizes}
    try:
        sessions = {size: stores[size].session(f"w9-{size}", budget=budget) for size in sizes}
        shape = {}
        for size, session in sessions.items():
            window = await session.window()  # warm-up, and what the window holds
            items = await session.get_items()  # the budgeted session's get_items() is it too
            assert items == window.items, f"W9: get_items() is not the window at {size}"
            assert window.items and sum(window.tokens) <= budget.limit, f"W9: window at {size}"
            shape[size] = {"items": len(window.items), "tokens": sum(window.tokens)}

        async def run_chunk(key: str, _round: int) -> int:
            session = sessions[int(key)]
            for _ in range(reads):
                await session.window()
            return reads

        per_op = await interleave([str(size) for size in sizes], rounds, run_chunk)
    finally:
        for store in stores.values():
            await store.close()
    return {
        "median_us": {str(s): median(per_op[str(s)]) * 1e6 for s in sizes},
        "window": {str(s): shape[s] for s in sizes},
        "growth_largest_vs_smallest": paired_ratio(per_op[str(sizes[-1])], per_op[str(sizes[0])]),
    }


def _agent(client: AsyncOpenAI) -> Agent[Any]:
    return Agent(
        name="bench",
        instructions=INSTRUCTIONS,
        model=OpenAIChatCompletionsModel("stub-model", client),
    )


async def _turn(agent: Agent[Any], text: str, session: Any, budget: ContextBudget | None) -> float:
    start = time.perf_counter()
    result = await history_store.Runner.run(agent, text, session=session, budget=budget)
    elapsed = time.perf_counter() - start
    if not str(result.final_output).startswith("reply"):
        raise RuntimeError(f"unexpected model reply {result.final_output!r}")
    return elapsed


async def budget_overhead(path: Path, turns: int, history_len: int) -> dict[str, Any]:
    """Median ms per turn with and without a budget, and the paired overhead per turn."""
    batches = range(history_len // 4 + 1)
    history: list[Any] = [item for b in batches for item in make_batch(b)][:history_len]
    budget = ContextBudget(OVERHEAD_BUDGET)
    modes = ("no_budget", "budget")
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    same_requests = True
    store = HistoryStore(f"sqlite+aiosqlite:///{path}", migrate="auto")
    try:
        with StubModelServer() as server:
            client = AsyncOpenAI(base_url=server.base_url, api_key="bench", max_retries=0)
            agent = _agent(client)
            for turn in range(-2, turns):  # two warm-up turns, not recorded
                order = modes if turn % 2 == 0 else modes[::-1]
                sent = {}
                for mode in order:
                    session = store.session(f"turn-{turn}-{mode}")
                    await session.add_items(list(history))
                    chosen = budget if mode == "budget" else None
                    elapsed = await _turn(agent, f"turn {turn}: what next?", session, chosen)
                    sent[mode] = server.requests[-1].body.get("messages")
                    if turn >= 0:
                        times[mode].append(elapsed)
                same_requests = same_requests and sent["budget"] == sent["no_budget"]
                server.reset()
    finally:
        await store.close()
    return {
        "median_ms_per_turn": {mode: median(times[mode]) * 1e3 for mode in modes},
        "overhead_ms_per_turn": median(
            [a - b for a, b in zip(times["budget"], times["no_budget"], strict=True)]
        )
        * 1e3,
        "same_requests": same_requests,
        "turns": turns,
        "history_items": history_len,
        "budget": OVERHEAD_BUDGET,
    }


async def request_bytes(path: Path, turns: int, max_input_tokens: int) -> dict[str, Any]:
    """Bytes and server-counted input tokens of each request of a ``turns``-turn budgeted
    conversation, and of turn ``turns`` without the budget on the same history."""
    budget = ContextBudget(max_input_tokens)
    sizes: list[int] = []

    async def measure(request: httpx.Request) -> None:
        sizes.append(len(request.content))

    http = DefaultAsyncHttpxClient(event_hooks={"request": [measure]})
    store = HistoryStore(f"sqlite+aiosqlite:///{path}", migrate="auto")
    rows: list[dict[str, Any]] = []
    seconds: list[float] = []
    errors: dict[str, int] = {}
    try:
        with StubModelServer(max_context_tokens=max_input_tokens) as server:
            client = AsyncOpenAI(
                base_url=server.base_url, api_key="bench", max_retries=0, http_client=http
            )
            agent = _agent(client)
            session = store.session("w9-budgeted")
            unbudgeted: dict[str, Any] = {}
            for turn in range(1, turns + 1):
                if turn == turns:
                    # The same N-1 turns of history in a session without a budget, and its
                    # turn N on a server without the limit (it would be refused).
                    copy = store.session("w9-unbudgeted")
                    await copy.add_items(await session.get_items())
                    server.max_context_tokens = None
                    await _turn(agent, _text(turn), copy, None)
                    server.max_context_tokens = max_input_tokens
                    unbudgeted = {
                        "bytes": sizes[-1],
                        "tokens": server.requests[-1].input_tokens,
                        "messages": len(server.requests[-1].messages),
                    }
                try:
                    seconds.append(await _turn(agent, _text(turn), session, budget))
                except Exception as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                request = server.requests[-1]
                rows.append(
                    {
                        "turn": turn,
                        "bytes": sizes[-1],
                        "tokens": request.input_tokens,
                        "messages": len(request.messages),
                        "rejected": request.error is not None,
                    }
                )
                if len(server.requests) > 8:
                    server.requests[:-1] = []  # keep the memory of a long run flat
            ratio = (await session.window(budget)).ratio
    finally:
        await store.close()
        await http.aclose()
    last = rows[-1]
    largest = max(rows, key=lambda row: row["bytes"])
    tenth = max(len(seconds) // 10, 1)
    return {
        "turns": turns,
        "max_input_tokens": max_input_tokens,
        "limit": budget.limit,
        "at_last_turn": last,
        "largest": largest,
        "max_tokens": max(row["tokens"] for row in rows),
        "max_tokens_vs_limit": max(row["tokens"] for row in rows) / budget.limit,
        "rejected": sum(row["rejected"] for row in rows),
        "errors": errors,
        "unbudgeted_at_last_turn": unbudgeted,
        "calibration_ratio": ratio,
        "ms_per_turn_first_tenth": median(seconds[:tenth]) * 1e3,
        "ms_per_turn_last_tenth": median(seconds[-tenth:]) * 1e3,
        "samples": [row for row in rows if row["turn"] in _sample_turns(turns)],
    }


async def _analyze(url: str) -> None:
    """Give the planner the statistics autovacuum would soon have after a bulk load: plans
    without them are not what a long-lived database runs."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("ANALYZE hs_sessions, hs_items, hs_turns, hs_summaries")
    finally:
        await connection.close()


def _sample_turns(turns: int) -> set[int]:
    return {1, 2, 5, 10, 20, 50, 100, 200, 500, turns} & set(range(1, turns + 1))


async def budget_window(
    directory: Path,
    pg_url: str | None,
    reset_pg: Callable[[str], Awaitable[None]],
    config: Sizes,
) -> dict[str, Any]:
    """W9 on SQLite, the window latency on PostgreSQL too when ``pg_url`` is given."""
    sizes, reads, rounds = config.w9_sizes, config.w9_reads, config.w9_rounds
    budget = ContextBudget(WINDOW_BUDGET)
    fill_seconds: dict[str, float] = {}
    paths = {size: directory / f"w9-{size}.db" for size in sizes}
    for size, path in paths.items():
        start = time.perf_counter()
        await fill_sqlite(OURS, path, f"w9-{size}", size)
        fill_seconds[f"sqlite@{size}"] = time.perf_counter() - start
    out: dict[str, Any] = {
        "what": f"token budget: window() under {WINDOW_BUDGET} tokens by history length, "
        "Runner.run with vs without a budget, request bytes of a long conversation",
        "window_budget": WINDOW_BUDGET,
        "sizes": list(sizes),
        "sqlite": await _window_latency(
            lambda size: HistoryStore(f"sqlite+aiosqlite:///{paths[size]}"),
            sizes,
            reads,
            rounds,
            budget,
        ),
    }
    for path in paths.values():
        for leftover in directory.glob(f"{path.name}*"):
            leftover.unlink()
    if pg_url:
        await reset_pg(pg_url)
        for size in sizes:
            start = time.perf_counter()
            await fill_pg(OURS, pg_url, f"w9-{size}", size)
            fill_seconds[f"postgresql@{size}"] = time.perf_counter() - start
        await _analyze(pg_url)
        out["postgresql"] = await _window_latency(
            lambda _size: HistoryStore(pg_url), sizes, reads, rounds, budget
        )
        await reset_pg(pg_url)
    out["fill_s"] = fill_seconds
    out["overhead"] = await budget_overhead(
        directory / "w9-turns.db", config.w9_turns, config.w9_history
    )
    out["requests"] = await request_bytes(
        directory / "w9-requests.db", config.w9_request_turns, config.w9_request_budget
    )
    return out
