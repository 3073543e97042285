"""W8: a whole ``Runner.run`` turn against the loopback model server, with and without a session.

Both sides send the model the same conversation: the session side keeps the earlier items in
the session (written before the clock starts), the other passes them as the input list. The
difference is what keeping the history costs per turn. history_store runs through its own
``history_store.Runner`` (guard, filters, and the turn's status and usage written to
``hs_turns``); the SDK's sessions through ``agents.Runner``, as their users run them.

``sdk_floor`` is a session that stores nothing (a Python list) under ``agents.Runner``: what
the SDK's own session handling costs a turn (reading the history in, converting and saving
the new items), which every session pays before its storage does anything.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents import Agent, OpenAIChatCompletionsModel, Runner
from agents.memory import SessionABC
from openai import AsyncOpenAI

import history_store
from history_store.testing import StubModelServer

from .impls import OURS, open_sqlite
from .items import make_batch
from .timing import median

NO_SESSION = "no_session"
SDK_FLOOR = "sdk_floor"


class _ListSession(SessionABC):
    """The SDK's session protocol over a list: no storage at all."""

    session_settings = None

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self._items: list[Any] = []

    async def get_items(self, limit: int | None = None) -> list[Any]:
        return list(self._items) if limit is None else self._items[-limit:] if limit else []

    async def add_items(self, items: list[Any]) -> None:
        self._items.extend(items)

    async def pop_item(self) -> Any:
        return self._items.pop() if self._items else None

    async def clear_session(self) -> None:
        self._items.clear()


async def _turn(agent: Agent[Any], given: Any, session: Any, runner: Any = Runner) -> float:
    start = time.perf_counter()
    result = await runner.run(agent, given, session=session)
    elapsed = time.perf_counter() - start
    if not str(result.final_output).startswith("reply"):
        raise RuntimeError(f"unexpected model reply {result.final_output!r}")
    return elapsed


async def runner_overhead(
    names: Sequence[str], directory: Path, turns: int, history_len: int
) -> dict[str, Any]:
    """Median seconds per turn for each mode, and each session's paired overhead per turn."""
    history = [item for b in range(history_len // 4 + 1) for item in make_batch(b)][:history_len]
    modes = [NO_SESSION, SDK_FLOOR, *names]
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    backends = {name: open_sqlite(name, directory / f"w8-{name}.db") for name in names}
    try:
        with StubModelServer() as server:
            client = AsyncOpenAI(base_url=server.base_url, api_key="bench", max_retries=0)
            agent: Agent[Any] = Agent(
                name="bench", model=OpenAIChatCompletionsModel("stub-model", client)
            )
            for turn in range(-2, turns):  # two warm-up turns, not recorded
                shift = turn % len(modes)
                for mode in [*modes[shift:], *modes[:shift]]:
                    text = f"turn {turn}: what next?"
                    if mode == NO_SESSION:
                        given: Any = [*history, {"role": "user", "content": text}]
                        elapsed = await _turn(agent, given, None)
                    elif mode == SDK_FLOOR:
                        floor = _ListSession(f"turn-{turn}")
                        await floor.add_items(list(history))
                        elapsed = await _turn(agent, text, floor)
                    else:
                        session = backends[mode].session(f"turn-{turn}")
                        await session.add_items(list(history))
                        runner = history_store.Runner if mode == OURS else Runner
                        elapsed = await _turn(agent, text, session, runner)
                    if turn >= 0:
                        times[mode].append(elapsed)
                server.reset()
    finally:
        for backend in backends.values():
            await backend.close()
    base = times[NO_SESSION]
    return {
        "results": {
            mode: {
                "median_ms_per_turn": median(times[mode]) * 1e3,
                "overhead_ms_per_turn": median(
                    [a - b for a, b in zip(times[mode], base, strict=True)]
                )
                * 1e3
                if mode != NO_SESSION
                else 0.0,
            }
            for mode in modes
        },
        "ours": OURS,
    }
