"""Workload sizes: the full run (``make bench``), ``--quick``, and ``tiny`` for the smoke test."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Sizes:
    w1_batches: int = 2000
    w1_chunk: int = 50
    w2_sizes: tuple[int, ...] = (1_000, 10_000, 100_000, 1_000_000)
    w2_reads: int = 20
    w2_rounds: int = 15
    w36_items: int = 10_000
    w3_rounds: int = 7
    w4_sessions: int = 200
    w4_batches: int = 20
    w4_rounds: int = 3
    burners: int = 3
    loaded_w1_batches: int = 200
    w5_batches: int = 250
    w6_pops: int = 500
    w6_chunk: int = 25
    w7_batches: int = 1000
    w7_sizes: tuple[int, ...] = (1_000, 10_000, 100_000, 1_000_000)
    w7_sessions: int = 200
    w8_turns: int = 150
    w8_history: int = 20
    w9_sizes: tuple[int, ...] = (1_000, 100_000, 1_000_000)
    w9_reads: int = 20
    w9_rounds: int = 15
    w9_turns: int = 150
    w9_history: int = 20
    w9_request_turns: int = 1000
    w9_request_budget: int = 2048
    w10_sessions: int = 100_000
    w10_items: int = 10_000
    w10_rounds: int = 15

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


PROFILES = {
    "full": Sizes(),
    "quick": Sizes(
        w1_batches=300,
        w1_chunk=25,
        w2_sizes=(1_000, 10_000, 100_000),
        w2_rounds=7,
        w3_rounds=3,
        w4_sessions=50,
        w4_batches=10,
        w4_rounds=1,
        loaded_w1_batches=50,
        w5_batches=50,
        w6_pops=100,
        w6_chunk=20,
        w7_batches=200,
        w7_sizes=(1_000, 10_000),
        w7_sessions=50,
        w8_turns=30,
        w9_sizes=(1_000, 10_000, 100_000),
        w9_rounds=7,
        w9_turns=30,
        w9_request_turns=200,
        w10_rounds=7,
    ),
    "tiny": Sizes(
        w1_batches=12,
        w1_chunk=4,
        w2_sizes=(50, 200),
        w2_reads=3,
        w2_rounds=2,
        w36_items=200,
        w3_rounds=1,
        w4_sessions=4,
        w4_batches=3,
        w4_rounds=1,
        burners=1,
        loaded_w1_batches=4,
        w5_batches=5,
        w6_pops=6,
        w6_chunk=3,
        w7_batches=6,
        w7_sizes=(50, 200),
        w7_sessions=4,
        w8_turns=3,
        w8_history=4,
        w9_sizes=(50, 200),
        w9_reads=3,
        w9_rounds=2,
        w9_turns=3,
        w9_history=4,
        w9_request_turns=12,
        w10_sessions=300,
        w10_items=2000,
        w10_rounds=2,
    ),
}
