"""A fork server of writers for the SIGKILL crash test (``tests/test_reliability_crash.py``).

Usage: ``python crash_writer.py URL SESSION_ID``. Importing history_store takes seconds, so
this process imports it (and loads the token counter's encoding, as a store's first open
does) once and forks one writer per ``fork START`` line read on stdin. Each
writer appends the batches ``START, START+1, ...`` to SESSION_ID until it is killed, writing
``ready PID`` once its engine is open and ``ok K`` after batch K is committed. When a writer
ends, this process writes ``exit PID STATUS`` (STATUS is the negated signal number for a
signal, as in ``subprocess``). The process forks before any database work, so no thread or
connection is ever inherited.
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback
from typing import Any

from history_store import HistoryStore
from history_store.budget.tokens import default_counter


def batch(k: int) -> list[dict[str, Any]]:
    """Batch ``k``: 1-5 items, the first a user message, some over several database pages."""
    size = 1 + (k * 7) % 5
    pad = "x" * ((k % 4) * 3000)
    return [
        {
            "role": "user" if j == 0 else "assistant",
            "content": f"b{k}-{j}{pad}",
            "b": k,
            "j": j,
            "n": size,
        }
        for j in range(size)
    ]


def _say(line: str) -> None:
    # os.write, not print: parent and children share this pipe and must not buffer.
    os.write(1, (line + "\n").encode())


async def _write_forever(url: str, session_id: str, start: int) -> None:
    store = HistoryStore(url)
    session = store.session(session_id)
    await store.engine()
    _say(f"ready {os.getpid()}")
    k = start
    while True:
        await session.add_items(batch(k))  # type: ignore[arg-type]
        _say(f"ok {k}")
        k += 1


def _child(url: str, session_id: str, start: int) -> None:
    try:
        asyncio.run(_write_forever(url, session_id, start))
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    os._exit(0)


def main() -> None:
    url, session_id = sys.argv[1], sys.argv[2]
    default_counter()
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command != "fork":
            raise SystemExit(f"unknown command {line!r}")
        pid = os.fork()
        if pid == 0:
            _child(url, session_id, int(argument))
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        _say(f"exit {pid} {code}")


if __name__ == "__main__":
    main()
