"""N writer processes appending batches to one database at once (``test_reliability_load``).

Usage: ``python concurrent_writers.py URL PROCESSES BATCHES``. The parent imports
history_store once and forks PROCESSES writers before any database work; each opens its own
store, waits at a pipe barrier so all start together, then appends BATCHES batches of two
items. Even batches go to the session ``shared`` (all writers contend for one row), odd ones
to ``own-W``. A writer that sees any exception prints it and exits 1; the parent exits with
the number of writers that failed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback
from typing import Any

from history_store import HistoryStore


def batch(writer: int, number: int) -> tuple[str, list[dict[str, Any]]]:
    """The session batch ``number`` of ``writer`` goes to, and its two items."""
    session_id = "shared" if number % 2 == 0 else f"own-{writer}"
    items = [
        {"role": "user", "content": f"w{writer} b{number}", "w": writer, "b": number, "i": 0},
        {
            "role": "assistant",
            "content": f"re w{writer} b{number}",
            "w": writer,
            "b": number,
            "i": 1,
        },
    ]
    return session_id, items


async def _write(url: str, writer: int, batches: int, barrier: int) -> None:
    async with HistoryStore(url) as store:
        await store.engine()
        os.read(barrier, 1)  # returns b"" once the parent has forked every writer
        for number in range(batches):
            session_id, items = batch(writer, number)
            await store.session(session_id).add_items(items)  # type: ignore[arg-type]


def main() -> None:
    url, processes, batches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    read_end, write_end = os.pipe()
    pids = []
    for writer in range(processes):
        pid = os.fork()
        if pid == 0:
            os.close(write_end)
            code = 0
            try:
                asyncio.run(_write(url, writer, batches, read_end))
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stderr.flush()
            os._exit(code)
        pids.append(pid)
    os.close(write_end)
    failed = 0
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        failed += status != 0
    sys.exit(failed)


if __name__ == "__main__":
    main()
