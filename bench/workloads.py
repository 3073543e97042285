"""W1 append, W2 tail read, W3 full read, W4 concurrent sessions, W6 pop: on any database.

Each function takes an :data:`Opener` that maps (implementation, label) to a fresh or existing
:class:`Backend`: one SQLite file per label and implementation, or the one PostgreSQL database
(where the labels only keep session ids apart).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .impls import OURS, Backend
from .items import make_batch
from .timing import interleave, paired_ratio, summarize

Opener = Callable[[str, str], Backend]
Filler = Callable[[str, str, str, int], Awaitable[None]]
"""(implementation, label, session_id, count): a session of ``count`` items, bulk-written."""

TAIL = 20


async def _open_all(names: Sequence[str], opener: Opener, label: str) -> dict[str, Backend]:
    return {name: opener(name, label) for name in names}


async def _close_all(backends: dict[str, Backend]) -> None:
    for backend in backends.values():
        await backend.close()


async def append(
    names: Sequence[str], opener: Opener, batches: int, chunk: int, label: str = "w1"
) -> dict[str, Any]:
    """W1: one session per implementation, ``batches`` batches of 4 items, in chunks."""
    data = [make_batch(i) for i in range(batches)]
    backends = await _open_all(names, opener, label)
    errors: Counter[str] = Counter()
    sessions = {name: backends[name].session(f"{label}-append") for name in names}
    try:
        for session in sessions.values():
            await session.get_items(limit=1)  # schema, connections: not timed

        async def run_chunk(name: str, round_no: int) -> int:
            for batch in data[round_no * chunk : (round_no + 1) * chunk]:
                try:
                    await sessions[name].add_items(batch)
                except Exception as exc:
                    errors[f"{name}: {type(exc).__name__}"] += 1
            return chunk

        per_op = await interleave(names, batches // chunk, run_chunk)
        stored = {name: len(await s.get_items()) for name, s in sessions.items()}
    finally:
        await _close_all(backends)
    expected = (batches // chunk) * chunk * 4
    return {
        "results": summarize(per_op, OURS, scale=4),
        "stored_ok": {name: count == expected for name, count in stored.items()},
        "errors": dict(errors),
    }


async def tail_read(
    names: Sequence[str],
    opener: Opener,
    filler: Filler,
    sizes: Sequence[int],
    reads: int,
    rounds: int,
) -> dict[str, Any]:
    """W2: ``get_items(limit=20)`` latency on sessions of each size, all interleaved."""
    keys = [f"{name}@{size}" for name in names for size in sizes]
    backends: dict[str, Backend] = {}
    fill_seconds: dict[str, float] = {}
    try:
        for name in names:
            for size in sizes:
                start = time.perf_counter()
                await filler(name, f"w2-{size}", f"tail-{size}", size)
                fill_seconds[f"{name}@{size}"] = time.perf_counter() - start
                backends[f"{name}@{size}"] = opener(name, f"w2-{size}")
        sessions = {key: backends[key].session(f"tail-{key.split('@')[1]}") for key in keys}
        for key, session in sessions.items():
            got = await session.get_items(limit=TAIL)  # warm-up, and a correctness check
            assert len(got) == TAIL, f"{key}: got {len(got)} items"

        async def run_chunk(key: str, _round: int) -> int:
            for _ in range(reads):
                await sessions[key].get_items(limit=TAIL)
            return reads

        per_op = await interleave(keys, rounds, run_chunk)
    finally:
        await _close_all(backends)
    results = summarize(per_op, f"{OURS}@{sizes[-1]}")
    for key in keys:
        results[key]["fill_s"] = fill_seconds[key]
    growth = {
        name: paired_ratio(per_op[f"{name}@{sizes[-1]}"], per_op[f"{name}@{sizes[0]}"])
        for name in names
    }
    mid = sizes[1] if len(sizes) > 1 else sizes[0]
    vs_ours_mid = {
        name: paired_ratio(per_op[f"{name}@{mid}"], per_op[f"{OURS}@{mid}"]) for name in names
    }
    return {
        "results": results,
        "latency_growth_largest_vs_smallest": growth,
        "speedup_of_ours_at_mid_size": vs_ours_mid,
        "mid_size": mid,
    }


async def full_read(
    names: Sequence[str], opener: Opener, label: str, session_id: str, expected: int, rounds: int
) -> dict[str, Any]:
    """W3 (timing part): ``get_items()`` of a whole session, one read per chunk."""
    backends = await _open_all(names, opener, label)
    try:
        sessions = {name: backends[name].session(session_id) for name in names}
        for name, session in sessions.items():
            got = len(await session.get_items())
            assert got == expected, f"{name}: read {got} items, expected {expected}"

        async def run_chunk(name: str, _round: int) -> int:
            await sessions[name].get_items()
            return 1

        per_op = await interleave(names, rounds, run_chunk)
    finally:
        await _close_all(backends)
    return {"results": summarize(per_op, OURS, scale=expected)}


async def pop(
    names: Sequence[str], opener: Opener, label: str, session_id: str, pops: int, chunk: int
) -> dict[str, Any]:
    """W6: ``pop_item`` ``pops`` times on a big session, in interleaved chunks."""
    backends = await _open_all(names, opener, label)
    empty: Counter[str] = Counter()
    try:
        sessions = {name: backends[name].session(session_id) for name in names}
        for session in sessions.values():
            await session.get_items(limit=1)

        async def run_chunk(name: str, _round: int) -> int:
            for _ in range(chunk):
                if await sessions[name].pop_item() is None:
                    empty[name] += 1
            return chunk

        per_op = await interleave(names, pops // chunk, run_chunk)
    finally:
        await _close_all(backends)
    return {"results": summarize(per_op, OURS), "pops_returning_none": dict(empty)}


async def _concurrent_once(
    backend: Backend, label: str, sessions: int, batches: int
) -> tuple[float, Counter[str], int]:
    ids = [f"{label}-s{i}" for i in range(sessions)]
    handles = [backend.session(sid) for sid in ids]
    await handles[0].get_items(limit=1)  # creates the schema: not timed
    errors: Counter[str] = Counter()
    data = [make_batch(i) for i in range(batches)]

    async def writer(session: Any) -> None:
        for batch in data:
            try:
                await session.add_items(batch)
            except Exception as exc:
                errors[type(exc).__name__] += 1

    start = time.perf_counter()
    await asyncio.gather(*(writer(h) for h in handles))
    elapsed = time.perf_counter() - start
    missing = 0
    for handle in handles:
        missing += batches * 4 - len(await handle.get_items())
    return elapsed, errors, missing


async def concurrent(
    names: Sequence[str], opener: Opener, sessions: int, batches: int, rounds: int, label: str
) -> dict[str, Any]:
    """W4: ``sessions`` sessions in one database writing ``batches`` batches each, at once."""
    errors: dict[str, Counter[str]] = {name: Counter() for name in names}
    missing: Counter[str] = Counter()

    per_op: dict[str, list[float]] = {name: [] for name in names}
    for round_no in range(rounds):
        shift = round_no % len(names)
        for name in [*names[shift:], *names[:shift]]:
            backend = opener(name, f"{label}-r{round_no}")
            try:
                elapsed, errs, lost = await _concurrent_once(
                    backend, f"{label}-r{round_no}", sessions, batches
                )
            finally:
                await backend.close()
            errors[name].update(errs)
            missing[name] += lost
            per_op[name].append(elapsed / (sessions * batches))
    return {
        "results": summarize(per_op, OURS, scale=4),
        "errors": {name: sum(c.values()) for name, c in errors.items()},
        "error_kinds": {name: dict(c) for name, c in errors.items() if c},
        "missing_items": {name: missing[name] for name in names},
    }
