"""Workloads across OS processes: W3's peak RSS, W5's two writers, and CPU-burning neighbours."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .fill import create_tables
from .impls import open_sqlite
from .items import tag_of

_ROOT = Path(__file__).resolve().parent.parent


def _child(mode: str, args: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench._child", mode, json.dumps(args)],
        cwd=_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _result(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = process.communicate(timeout=600)
    if process.returncode != 0:
        raise RuntimeError(f"benchmark child failed with exit code {process.returncode}")
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def peak_rss(names: Sequence[str], paths: dict[str, Path], session_id: str) -> dict[str, Any]:
    """W3 (memory part): each implementation reads the whole session in a fresh process."""
    out: dict[str, Any] = {}
    for name in names:
        args = {"impl": name, "path": str(paths[name]), "session_id": session_id}
        got = _result(_child("rss", args))
        out[name] = {
            "items": got["count"],
            "peak_rss_mib": got["peak_kib"] / 1024,
            "read_growth_mib": (got["peak_kib"] - got["before_kib"]) / 1024,
        }
    return out


def _verify(items: list[Any], writers: Sequence[str], batches: int) -> dict[str, Any]:
    tags = [tag_of(item) for item in items]
    in_order = all(
        [(b, k) for w, b, k in tags if w == writer]
        == [(b, k) for b in range(batches) for k in range(4)]
        for writer in writers
    )
    # A batch is one transaction: its 4 items must sit next to each other, in order.
    contiguous = len(tags) % 4 == 0 and all(
        [tags[i + k] for k in range(4)] == [(tags[i][0], tags[i][1], k) for k in range(4)]
        for i in range(0, len(tags), 4)
    )
    return {"count": len(items), "in_order": in_order, "batches_contiguous": contiguous}


async def two_writers(names: Sequence[str], directory: Path, batches: int) -> dict[str, Any]:
    """W5: two processes append to one session at once; counts and order are verified."""
    out: dict[str, Any] = {}
    for name in names:
        path = directory / f"w5-{name}.db"
        await create_tables(name, path, "shared")
        args = {"impl": name, "path": str(path), "session_id": "shared", "batches": batches}
        children = [_child("append", {**args, "writer": w}) for w in ("a", "b")]
        for child in children:
            assert child.stdout is not None and child.stdin is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError(f"W5 writer for {name} did not start")
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results = [_result(child) for child in children]
        backend = open_sqlite(name, path)
        try:
            items = await backend.session("shared").get_items()
        finally:
            await backend.close()
        span = max(r["end"] for r in results) - min(r["start"] for r in results)
        out[name] = {
            **_verify(items, ("a", "b"), batches),
            "expected": 2 * batches * 4,
            "errors": sum(sum(r["errors"].values()) for r in results),
            "items_per_s": 2 * batches * 4 / span if span > 0 else None,
        }
    return out


@contextmanager
def cpu_burners(count: int) -> Iterator[None]:
    """``count`` processes spinning on the CPU for as long as the block runs."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for burner in burners:
            burner.terminate()
        for burner in burners:
            burner.wait(timeout=30)
