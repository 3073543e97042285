"""Writes queued behind another process's lock by an event loop that then closes.

Usage: ``python abandoned_writes.py URL COUNT``. Starts COUNT ``add_items`` calls at once
(the database is locked by the caller, so they queue on the store's writer thread), lets
them start, then closes the event loop without awaiting them, prints ``closed`` with the
monotonic time, and exits: the interpreter then waits for the writer thread.
"""

from __future__ import annotations

import asyncio
import sys
import time

from history_store import HistoryStore


def main() -> None:
    url, count = sys.argv[1], int(sys.argv[2])
    store = HistoryStore(url)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(store.engine())  # the schema is there: the writes are all that wait
    pending = []
    for number in range(count):
        item = {"role": "user", "content": f"queued {number}"}
        write = store.session(f"s{number}").add_items([item])  # type: ignore[list-item]
        pending.append(loop.create_task(write))
    loop.run_until_complete(asyncio.sleep(0.5))
    loop.close()  # the tasks are never awaited; their writes wait on the writer thread
    print("closed", time.monotonic(), flush=True)


if __name__ == "__main__":
    main()
