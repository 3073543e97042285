"""Interleaved timing: every implementation runs a small chunk in turn, round after round.

A noisy neighbour then slows every implementation's chunks alike, and the per-round ratio
between two implementations stays meaningful. Results are medians, never single times.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

Chunk = Callable[[str, int], Awaitable[int]]
"""Runs one chunk for (implementation, round) and returns how many operations it did."""


async def interleave(names: Sequence[str], rounds: int, chunk: Chunk) -> dict[str, list[float]]:
    """Seconds per operation of each chunk, per implementation, in round order.

    The order of implementations rotates every round so none always runs first.
    """
    per_op: dict[str, list[float]] = {name: [] for name in names}
    for round_no in range(rounds):
        shift = round_no % len(names)
        for name in [*names[shift:], *names[:shift]]:
            start = time.perf_counter()
            operations = await chunk(name, round_no)
            elapsed = time.perf_counter() - start
            per_op[name].append(elapsed / max(operations, 1))
    return per_op


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def paired_ratio(slow: Sequence[float], fast: Sequence[float]) -> float:
    """Median over rounds of ``slow[i] / fast[i]``: how many times faster ``fast`` is."""
    pairs = [a / b for a, b in zip(slow, fast, strict=True) if b > 0]
    return median(pairs)


def summarize(per_op: dict[str, list[float]], ours: str, scale: float = 1.0) -> dict[str, Any]:
    """Median latency (µs) and rate per implementation, and each one's ratio to ``ours``.

    ``speedup_vs`` > 1 means ours is that many times faster (paired per round).
    ``scale`` is how many items one operation handles (for items/s).
    """
    out: dict[str, Any] = {}
    for name, values in per_op.items():
        med = median(values)
        out[name] = {
            "median_us": med * 1e6,
            "items_per_s": scale / med if med > 0 else None,
            "chunks": len(values),
            "speedup_vs": paired_ratio(values, per_op[ours]) if ours in per_op else None,
        }
    return out
