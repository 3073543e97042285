"""Child processes of the benchmark: W3's peak-RSS reader and W5's concurrent appenders.

Run as ``python -m bench._child MODE JSON``; prints one JSON line with the result. An
appender prints ``ready`` first and waits for ``go`` on stdin, so both writers start together.
"""

from __future__ import annotations

import asyncio
import gc
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from .impls import open_sqlite
from .items import make_batch


def _maxrss_kib() -> int:
    # VmHWM is this process's own peak. ru_maxrss is not: Linux carries it over from the
    # parent through fork and exec, so every child would report the benchmark's own peak.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def _rss(args: dict[str, Any]) -> dict[str, Any]:
    backend = open_sqlite(args["impl"], Path(args["path"]))
    try:
        session = backend.session(args["session_id"])
        await session.get_items(limit=1)
        gc.collect()
        before = _maxrss_kib()
        items = await session.get_items()
        peak = _maxrss_kib()
        return {"count": len(items), "before_kib": before, "peak_kib": peak}
    finally:
        await backend.close()


async def _append(args: dict[str, Any]) -> dict[str, Any]:
    backend = open_sqlite(args["impl"], Path(args["path"]))
    errors: dict[str, int] = {}
    try:
        session = backend.session(args["session_id"])
        await session.get_items(limit=1)
        data = [make_batch(i, args["writer"]) for i in range(args["batches"])]
        print("ready", flush=True)
        sys.stdin.readline()
        start = time.time()
        for batch in data:
            try:
                await session.add_items(batch)
            except Exception as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        end = time.time()
    finally:
        await backend.close()
    return {"errors": errors, "start": start, "end": end}


def main() -> None:
    from agents import set_tracing_disabled

    set_tracing_disabled(True)
    mode, raw = sys.argv[1], sys.argv[2]
    runner = {"rss": _rss, "append": _append}[mode]
    print(json.dumps(asyncio.run(runner(json.loads(raw)))), flush=True)


if __name__ == "__main__":
    main()
