"""The whole benchmark: every workload, in an order that reuses the big fills."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from . import procs, workloads
from .budget_window import budget_window
from .config import Sizes
from .fill import fill_pg, fill_sqlite
from .impls import OURS, PG_IMPLS, SQLITE_IMPLS, Backend, open_pg, open_sqlite
from .report import check_targets
from .runner_turn import runner_overhead
from .viewer_pages import viewer_pages

ALL_WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10")
SDK_SESSIONS = tuple(name for name in SQLITE_IMPLS if name != "raw_sqlite3")


class SQLiteFiles:
    """One file per (label, implementation) in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, name: str, label: str) -> Path:
        return self.directory / f"{label}-{name}.db"

    def open(self, name: str, label: str) -> Backend:
        return open_sqlite(name, self.path(name, label))

    async def fill(self, name: str, label: str, session_id: str, count: int) -> None:
        await fill_sqlite(name, self.path(name, label), session_id, count)

    def remove(self, label: str) -> None:
        for path in self.directory.glob(f"{label}-*.db*"):
            path.unlink()


async def _reset_pg(url: str) -> None:
    """Empty the benchmark database's public schema, creating the database on first use (a
    fresh machine has only the server's default databases)."""
    parsed = make_url(url).set(drivername="postgresql")
    try:
        connection = await asyncpg.connect(parsed.render_as_string(hide_password=False))
    except asyncpg.InvalidCatalogNameError:
        server = parsed.set(database="postgres").render_as_string(hide_password=False)
        admin = await asyncpg.connect(server)
        try:
            # The name comes from the operator's own --pg-url; quoted as an identifier.
            await admin.execute(f'CREATE DATABASE "{parsed.database}"')
        finally:
            await admin.close()
        connection = await asyncpg.connect(parsed.render_as_string(hide_password=False))
    try:
        await connection.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
    finally:
        await connection.close()


async def _sqlite_core(
    files: SQLiteFiles, sizes: Sizes, log: Callable[[str], None]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names = SQLITE_IMPLS
    log("W1 append")
    out["W1"] = await workloads.append(names, files.open, sizes.w1_batches, sizes.w1_chunk)
    log("W2 tail read (bulk fills first)")
    out["W2"] = await workloads.tail_read(
        names, files.open, files.fill, sizes.w2_sizes, sizes.w2_reads, sizes.w2_rounds
    )
    for size in sizes.w2_sizes:
        files.remove(f"w2-{size}")
    log("W3 full read")
    for name in names:
        await files.fill(name, "w36", "big", sizes.w36_items)
    out["W3"] = await workloads.full_read(
        names, files.open, "w36", "big", sizes.w36_items, sizes.w3_rounds
    )
    paths = {name: files.path(name, "w36") for name in names}
    for name, row in procs.peak_rss(names, paths, "big").items():
        out["W3"]["results"][name].update(row)
    log("W6 pop_item")
    out["W6"] = await workloads.pop(names, files.open, "w36", "big", sizes.w6_pops, sizes.w6_chunk)
    return out


async def _concurrency(
    files: SQLiteFiles, sizes: Sizes, log: Callable[[str], None]
) -> dict[str, Any]:
    names = SQLITE_IMPLS
    log("W4 concurrent sessions")
    w4 = await workloads.concurrent(
        names, files.open, sizes.w4_sessions, sizes.w4_batches, sizes.w4_rounds, "w4"
    )
    log(f"W1 + W4 again under {sizes.burners} CPU-burning processes")
    with procs.cpu_burners(sizes.burners):
        loaded_w1 = await workloads.append(
            names, files.open, sizes.loaded_w1_batches, sizes.loaded_w1_batches, "w1load"
        )
        loaded_w4 = await workloads.concurrent(
            names, files.open, sizes.w4_sessions, sizes.w4_batches, 1, "w4load"
        )
    w4["under_load"] = {
        "burners": sizes.burners,
        "W1": {
            "errors_ours": sum(n for k, n in loaded_w1["errors"].items() if k.startswith(OURS)),
            "errors": loaded_w1["errors"],
            "stored_ok": loaded_w1["stored_ok"],
        },
        "W4": loaded_w4,
    }
    log("W5 two processes, one session")
    w5 = {"results": await procs.two_writers(names, files.directory, sizes.w5_batches)}
    return {"W4": w4, "W5": w5}


async def _postgres(url: str, sizes: Sizes, log: Callable[[str], None]) -> dict[str, Any]:
    await _reset_pg(url)

    def opener(name: str, _label: str) -> Backend:
        return open_pg(name, url)

    async def filler(name: str, _label: str, session_id: str, count: int) -> None:
        await fill_pg(name, url, session_id, count)

    log("W7 PostgreSQL: append, tail read, concurrent")
    out = {
        "W7_W1": await workloads.append(PG_IMPLS, opener, sizes.w7_batches, sizes.w1_chunk, "w7"),
        "W7_W2": await workloads.tail_read(
            PG_IMPLS, opener, filler, sizes.w7_sizes, sizes.w2_reads, sizes.w2_rounds
        ),
        "W7_W4": await workloads.concurrent(
            PG_IMPLS, opener, sizes.w7_sessions, sizes.w4_batches, sizes.w4_rounds, "w7c"
        ),
    }
    await _reset_pg(url)
    return out


async def run(
    sizes: Sizes,
    directory: Path,
    pg_url: str | None,
    only: tuple[str, ...] = ALL_WORKLOADS,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the workloads named in ``only``; returns the JSON-ready result with its targets."""
    started = time.perf_counter()
    files = SQLiteFiles(directory)
    result: dict[str, Any] = {}
    if {"W1", "W2", "W3", "W6"} & set(only):
        result.update(await _sqlite_core(files, sizes, log))
    if {"W4", "W5"} & set(only):
        result.update(await _concurrency(files, sizes, log))
    if "W7" in only and pg_url:
        result.update(await _postgres(pg_url, sizes, log))
    if "W8" in only:
        log("W8 Runner.run turn overhead")
        result["W8"] = await runner_overhead(
            SDK_SESSIONS, directory, sizes.w8_turns, sizes.w8_history
        )
    if "W9" in only:
        log("W9 token budget (window by history length, per-turn overhead, request bytes)")
        result["W9"] = await budget_window(directory, pg_url, _reset_pg, sizes)
    if "W10" in only:
        log("W10 viewer pages (sessions page, a big session's pages, memory)")
        result["W10"] = await viewer_pages(
            directory, pg_url, _reset_pg, sizes.w10_sessions, sizes.w10_items, sizes.w10_rounds
        )
    result = {key: value for key, value in result.items() if key.split("_")[0] in only}
    result["targets"] = check_targets(result)
    result["meta"] = {
        "sizes": sizes.as_dict(),
        "python": platform.python_version(),
        "machine": platform.platform(),
        "pg": bool(pg_url),
        "elapsed_s": time.perf_counter() - started,
    }
    return result
