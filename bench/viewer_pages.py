"""W10: the web viewer's pages on a big database, through the ASGI app in process.

One database per dialect holds ``sessions`` sessions (bulk-written rows: ids ``user-000000``
on, a tenth with metadata, last activity spread over 400 days) plus one session of
``items`` items and one of a tenth of that. Timed, each the median of ``rounds`` requests
(httpx's ASGI transport: the app's whole work, no socket):

* the sessions page: the first page, a page from the middle (keyset cursor), the first
  page filtered by idle days and by a metadata value;
* the big session's page: the first, a middle one (``after=``), the last (``before=``),
  one found by turn, and the first page at the largest page size.

Memory: the peak of Python allocations (tracemalloc) while one page is served, on the big
session and on the small one, and over every page of the big session in turn; pages read a
bounded number of rows, so the three peaks should be alike.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from history_store.viewer import create_app
from history_store.viewer.queries import MAX_PAGE_ITEMS

from .fill import fill_pg, fill_sqlite
from .impls import OURS

BIG = "big-session"
SMALL = "small-session"


def _session_rows(count: int) -> list[tuple[Any, ...]]:
    now = datetime.now(timezone.utc)
    rows = []
    for index in range(count):
        updated = now - timedelta(days=index % 400, seconds=index)
        metadata = json.dumps({"customer": f"c{index % 1000}"}) if index % 10 == 0 else None
        rows.append((f"user-{index:06d}", updated, updated, metadata, 4, 2, 4))
    return rows


async def fill_sessions_sqlite(path: Path, count: int) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO hs_sessions (session_id, created_at, updated_at, metadata, item_count, "
            "turn_count, last_seq) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                (sid, c.strftime("%Y-%m-%d %H:%M:%S.%f"), u.strftime("%Y-%m-%d %H:%M:%S.%f"), *rest)
                for sid, c, u, *rest in _session_rows(count)
            ),
        )
        db.execute("COMMIT")
    finally:
        db.close()


async def fill_sessions_pg(url: str, count: int) -> None:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.copy_records_to_table(
            "hs_sessions",
            records=_session_rows(count),
            columns=[
                "session_id",
                "created_at",
                "updated_at",
                "metadata",
                "item_count",
                "turn_count",
                "last_seq",
            ],
        )
    finally:
        await connection.close()


async def _median_ms(client: httpx.AsyncClient, path: str, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        response = await client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"W10: {path} answered {response.status_code}")
    return statistics.median(times)


async def _peak_bytes(client: httpx.AsyncClient, paths: list[str]) -> int:
    """The largest tracemalloc peak of any one of ``paths``' requests."""
    peak = 0
    tracemalloc.start()
    try:
        for path in paths:
            tracemalloc.reset_peak()
            response = await client.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"W10: {path} answered {response.status_code}")
            peak = max(peak, tracemalloc.get_traced_memory()[1])
            del response
    finally:
        tracemalloc.stop()
    return peak


async def _every_page(client: httpx.AsyncClient, session_id: str) -> list[str]:
    paths, after = [], None
    while True:
        path = f"/sessions/{session_id}" + (f"?after={after}" if after is not None else "")
        paths.append(path)
        after = (await client.get("/api" + path)).json()["next_after"]
        if after is None:
            return paths


async def _measure(url: str, sessions: int, items: int, rounds: int) -> dict[str, Any]:
    app = create_app(url)
    middle = f"user-{sessions // 2:06d}"
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            await client.get("/sessions")  # connections, templates: not timed
            sessions_ms = {
                "first": await _median_ms(client, "/sessions", rounds),
                "middle": await _median_ms(client, f"/sessions?after={middle}", rounds),
                "idle_30_days": await _median_ms(client, "/sessions?idle_days=30", rounds),
                "metadata_value": await _median_ms(
                    client, "/sessions?meta=customer&meta_value=c0", rounds
                ),
                "json_first": await _median_ms(client, "/api/sessions", rounds),
            }
            big = f"/sessions/{BIG}"
            session_ms = {
                "first": await _median_ms(client, big, rounds),
                "middle": await _median_ms(client, f"{big}?after={items // 2}", rounds),
                "last": await _median_ms(client, f"{big}?before={items + 1}", rounds),
                "by_turn": await _median_ms(client, f"{big}?turn={items // 8}", rounds),
                "largest_page": await _median_ms(client, f"{big}?limit={MAX_PAGE_ITEMS}", rounds),
                "json_first": await _median_ms(client, f"/api{big}", rounds),
            }
            pages = await _every_page(client, BIG)
            memory = {
                "small_page_bytes": await _peak_bytes(client, [f"/sessions/{SMALL}"]),
                "big_page_bytes": await _peak_bytes(client, [big]),
                "every_big_page_bytes": await _peak_bytes(client, pages),
                "big_pages": len(pages),
            }
    memory["growth_big_vs_small"] = memory["every_big_page_bytes"] / memory["small_page_bytes"]
    return {
        "sessions_page_ms": sessions_ms,
        "session_page_ms": session_ms,
        "memory": memory,
        "sessions_page_worst_unfiltered_ms": max(sessions_ms["first"], sessions_ms["middle"]),
        "session_page_worst_ms": max(
            session_ms[key] for key in ("first", "middle", "last", "by_turn")
        ),
    }


async def viewer_pages(
    directory: Path,
    pg_url: str | None,
    reset_pg: Callable[[str], Awaitable[None]],
    sessions: int,
    items: int,
    rounds: int,
) -> dict[str, Any]:
    """W10 on SQLite, and on PostgreSQL when ``pg_url`` is given."""
    path = directory / "w10.db"
    await fill_sqlite(OURS, path, BIG, items)
    await fill_sqlite(OURS, path, SMALL, max(items // 10, 1))
    await fill_sessions_sqlite(path, sessions)
    out: dict[str, Any] = {
        "what": f"viewer pages: {sessions} sessions, a {items}-item session",
        "sqlite": await _measure(f"sqlite+aiosqlite:///{path}", sessions, items, rounds),
    }
    path.unlink()
    if pg_url:
        await reset_pg(pg_url)
        await fill_pg(OURS, pg_url, BIG, items)
        await fill_pg(OURS, pg_url, SMALL, max(items // 10, 1))
        await fill_sessions_pg(pg_url, sessions)
        out["postgresql"] = await _measure(pg_url, sessions, items, rounds)
        await reset_pg(pg_url)
    return out
