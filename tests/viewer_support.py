"""A history database for the viewer's tests, written through the real store.

* ``cli_support``'s three sessions (``sales-1``, ``support-42``, ``support-7``), imported;
* ``tools-1``: four turns with tool calls, a reasoning item, a hosted tool call and one
  corrupt row;
* ``HOSTILE_ID``: markup and script in every string a page shows (id, metadata, texts, tool
  name and arguments), to check that none of it becomes markup.

:func:`add_turn_tables` fills ``hs_turns`` (revision 0003) for ``tools-1`` and ``support-42``
and ``hs_summaries`` (revision 0004).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from cli_support import assistant, populate, user
from starlette.applications import Starlette

from history_store import HistoryStore
from history_store._engine import make_engine, resolve_url

SCRIPT = "<script>window.__pwned = 1</script>"
HOSTILE_ID = 'evil/<b>"id"</b>&amp;'
TOOLS_ID = "tools-1"


def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def output(call_id: str, text: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": text}


TOOLS_TURNS: list[list[dict[str, Any]]] = [
    [
        user("What is the weather in Oslo?"),
        call("w1", "get_weather", '{"city": "Oslo", "unit": "celsius"}'),
        output("w1", '{"temperature": -3, "sky": "snow"}'),
        assistant("It is -3 °C and snowing in Oslo."),
    ],
    [
        user("And in Bergen?"),
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "Bergen is rainy."}],
        },
        call("w2", "get_weather", '{"city": "Bergen"}'),
        output("w2", "rain, 6 degrees"),
        assistant("Rain and 6 °C in Bergen."),
    ],
    [
        user("Search the news about the fjord ferry"),
        {
            "type": "web_search_call",
            "id": "ws_1",
            "status": "completed",
            "action": {"query": "fjord ferry"},
        },
        assistant("The ferry runs hourly."),
    ],
    [user("Thanks!"), assistant("You are welcome.")],
]

HOSTILE_TURNS: list[list[dict[str, Any]]] = [
    [
        user(f"look: {SCRIPT} <img src=x onerror=alert(1)>"),
        call("h1", f"tool{SCRIPT}", '{"html": "<script>alert(2)</script>"}'),
        output("h1", f"</pre>{SCRIPT}"),
        assistant(f"reply {SCRIPT}"),
    ]
]


async def add_session(
    store: HistoryStore, session_id: str, turns: list[list[dict[str, Any]]]
) -> None:
    session = store.session(session_id)
    for items in turns:
        await session.add_items(items)


async def build(url: str, directory: Path) -> None:
    """The whole fixture database at ``url`` (its schema upgraded first)."""
    await populate(url, directory)
    async with HistoryStore(url, migrate="auto") as store:
        await add_session(store, TOOLS_ID, TOOLS_TURNS)
        await add_session(store, HOSTILE_ID, HOSTILE_TURNS)
        engine = await store.engine()
        async with engine.begin() as connection:
            await connection.execute(
                sa.text("UPDATE hs_items SET item = :bad WHERE session_id = :id AND seq = :seq"),
                {"bad": "{not json", "id": TOOLS_ID, "seq": 14},
            )
            await connection.execute(
                sa.text("UPDATE hs_sessions SET metadata = :meta WHERE session_id = :id"),
                {"meta": '{"note": "<script>alert(3)</script>", "team": "sec"}', "id": HOSTILE_ID},
            )


turns_table = sa.table(
    "hs_turns",
    *(sa.column(name) for name in ("session_id", "turn", "status", "agent", "model", "requests")),
    *(sa.column(name) for name in ("input_tokens", "output_tokens", "total_tokens")),
    sa.column("started_at", sa.DateTime(timezone=True)),
    sa.column("finished_at", sa.DateTime(timezone=True)),
)
summaries_table = sa.table(
    "hs_summaries",
    *(sa.column(name) for name in ("session_id", "first_seq", "last_seq", "text", "model")),
    *(sa.column(name) for name in ("input_tokens", "output_tokens", "total_tokens", "tokens")),
    sa.column("created_at", sa.DateTime(timezone=True)),
)

STARTED = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)

TURN_ROWS = [
    # tools-1: every status, one turn with no usage recorded.
    (TOOLS_ID, 1, "completed", "weather-agent", "gpt-4o-mini", 2, 120, 30, 150),
    (TOOLS_ID, 2, "failed", "weather-agent", "gpt-4o-mini", 1, 200, 80, 280),
    (TOOLS_ID, 3, "blocked", "news-agent", "llama3.2", None, None, None, None),
    (TOOLS_ID, 4, "interrupted", "weather-agent", "gpt-4o-mini", 1, 90, 10, 100),
    ("support-42", 1, "completed", "support", "gpt-4o", 2, 300, 50, 350),
]
SUMMARY_ROWS = [
    (TOOLS_ID, 1, 4, "The user asked about Oslo: -3 °C, snow.", "gpt-4o-mini", 60, 20, 80),
    (HOSTILE_ID, 1, 2, f"summary {SCRIPT}", None, None, None, None),
]


async def add_turn_tables(url: str) -> None:
    """Fill ``hs_turns`` and ``hs_summaries`` with :data:`TURN_ROWS` and
    :data:`SUMMARY_ROWS`."""
    engine = make_engine(resolve_url(url))
    try:
        async with engine.begin() as connection:
            # The fixture's own rows replace what the runs of `populate` recorded.
            await connection.execute(
                sa.delete(turns_table).where(
                    turns_table.c.session_id.in_({row[0] for row in TURN_ROWS})
                )
            )
            await connection.execute(
                sa.insert(turns_table),
                [
                    {
                        **dict(
                            zip(
                                (
                                    "session_id",
                                    "turn",
                                    "status",
                                    "agent",
                                    "model",
                                    "requests",
                                    "input_tokens",
                                    "output_tokens",
                                    "total_tokens",
                                ),
                                row,
                                strict=True,
                            )
                        ),
                        "started_at": STARTED,
                        "finished_at": STARTED,
                    }
                    for row in TURN_ROWS
                ],
            )
            await connection.execute(
                sa.insert(summaries_table),
                [
                    {
                        **dict(
                            zip(
                                (
                                    "session_id",
                                    "first_seq",
                                    "last_seq",
                                    "text",
                                    "model",
                                    "input_tokens",
                                    "output_tokens",
                                    "total_tokens",
                                ),
                                row,
                                strict=True,
                            )
                        ),
                        "created_at": STARTED,
                        "tokens": len(row[3]) // 4 + 4,
                    }
                    for row in SUMMARY_ROWS
                ],
            )
    finally:
        await engine.dispose()


@asynccontextmanager
async def client(app: Starlette, host: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on ``app`` through the ASGI transport, inside the app's lifespan."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as opened:
            yield opened
