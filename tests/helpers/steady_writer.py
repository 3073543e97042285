"""One writer process appending searchable items until told to stop.

Usage: ``python steady_writer.py URL STOP_FILE NAME``. Appends one-item batches with text to
the sessions ``w-NAME-0`` .. ``w-NAME-9`` in turn, printing ``ready`` once it has written its
first batch, until ``STOP_FILE`` exists (checked between batches); then prints the number of
batches. A write refused because the database stayed busy (a VACUUM holds it) is retried.
"""

from __future__ import annotations

import asyncio
import os
import sys

from history_store import DatabaseBusyError, HistoryStore


async def _write(url: str, stop_file: str, prefix: str) -> int:
    written = 0
    async with HistoryStore(url) as store:
        while not os.path.exists(stop_file):
            item = {"role": "user", "content": f"steady word{written % 7} number {written}"}
            try:
                await store.session(f"w-{prefix}-{written % 10}").add_items([item])  # type: ignore[list-item]
            except DatabaseBusyError:
                continue
            written += 1
            if written == 1:
                print("ready", flush=True)
    return written


if __name__ == "__main__":
    print(asyncio.run(_write(sys.argv[1], sys.argv[2], sys.argv[3])), flush=True)
