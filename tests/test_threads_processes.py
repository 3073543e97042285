"""One store used from several event loops (threads) and one database from two OS processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import asyncpg
from agents import Agent, OpenAIChatCompletionsModel, Runner
from openai import AsyncOpenAI
from sqlalchemy import text
from sqlalchemy.engine import make_url

from history_store import HistoryStore
from history_store._items import extract_text
from history_store.testing import StubModelServer

REPO = Path(__file__).resolve().parent.parent


def aiosqlite_threads() -> int:
    """aiosqlite runs one worker thread per open connection."""
    return sum("_connection_worker_thread" in t.name for t in threading.enumerate())


async def open_connections(store: HistoryStore) -> int:
    """Connections held by every engine of ``store``: worker threads, or PG backends."""
    if store.dialect == "sqlite":
        return aiosqlite_threads()
    dsn = store.sqlalchemy_url.set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
            store.sqlalchemy_url.database,
        )
        return count
    finally:
        await connection.close()


def run_sync_twice(store: HistoryStore, base_url: str, errors: list[BaseException]) -> None:
    try:
        # An AsyncOpenAI client belongs to the loop it first ran on: this thread makes its own.
        client = AsyncOpenAI(base_url=base_url, api_key="stub", max_retries=0)
        agent = Agent(name="threaded", model=OpenAIChatCompletionsModel("stub-model", client))
        session = store.session("threaded")
        Runner.run_sync(agent, "first question", session=session)
        Runner.run_sync(agent, "second question", session=session)
    except BaseException as exc:
        errors.append(exc)


async def test_run_sync_in_a_thread_shares_the_store(
    store: HistoryStore, stub: StubModelServer
) -> None:
    main = store.session("main")
    await main.add_items([{"role": "user", "content": "from the main loop"}])
    baseline = await open_connections(store)
    errors: list[BaseException] = []
    worker = threading.Thread(target=run_sync_twice, args=(store, stub.base_url, errors))
    worker.start()
    # The main loop keeps using the store while the thread's loop does.
    writes = 0
    while worker.is_alive():
        await main.add_items([{"role": "assistant", "content": f"tick {writes}"}])
        writes += 1
        await asyncio.sleep(0.01)
    worker.join()
    assert errors == []

    threaded = await store.session("threaded").get_items()
    assert [(item.get("role"), extract_text(item)) for item in threaded] == [
        ("user", "first question"),
        ("assistant", "reply 1: saw 1 messages; last user said: first question"),
        ("user", "second question"),
        ("assistant", "reply 2: saw 3 messages; last user said: second question"),
    ]
    assert stub.requests[1].texts() == [
        "first question",
        "reply 1: saw 1 messages; last user said: first question",
        "second question",
    ]
    assert len(await main.get_items()) == 1 + writes
    # The thread's loop closed its own connections before run_sync returned.
    assert await open_connections(store) == baseline


async def test_asyncio_run_per_call_leaves_no_connections(store: HistoryStore) -> None:
    await store.session("warm").add_items([{"role": "user", "content": "x"}])
    baseline = await open_connections(store)

    def one_call(number: int) -> None:
        async def body() -> None:
            session = store.session(f"call-{number}")
            await session.add_items([{"role": "user", "content": str(number)}])
            assert await session.get_items() == [{"role": "user", "content": str(number)}]

        asyncio.run(body())

    for number in range(6):
        thread = threading.Thread(target=one_call, args=(number,))
        thread.start()
        thread.join()
    assert await open_connections(store) == baseline
    engine = await store.engine()
    async with engine.connect() as connection:
        count = await connection.scalar(text("SELECT count(*) FROM hs_sessions"))
    assert count == 7


async def test_close_reaches_a_loop_running_in_another_thread(db_url: str) -> None:
    store = HistoryStore(db_url, migrate="auto")
    await store.session("main").add_items([{"role": "user", "content": "m"}])
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        future = asyncio.run_coroutine_threadsafe(
            store.session("other").add_items([{"role": "user", "content": "o"}]), loop
        )
        await asyncio.wrap_future(future)
        before = aiosqlite_threads()
        await store.close()
        if store.dialect == "sqlite":
            # The engine's connections are closed (the sessions' own reads and writes use
            # the stdlib driver, whose connections close with the store too).
            assert before >= 1
            assert aiosqlite_threads() == 0
            assert not [t for t in threading.enumerate() if t.name.startswith("history_store")]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
    async with HistoryStore(db_url, migrate="check") as reopened:
        assert await reopened.session("other").get_items() == [{"role": "user", "content": "o"}]


APPENDER = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from history_store import HistoryStore

    url, tag, count, ready, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:6]
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.005)

    async def main() -> None:
        async with HistoryStore(url, migrate="auto") as store:
            session = store.session("shared")
            for n in range(count):
                # Every second call appends a batch of two, so batches interleave too.
                batch = [{"role": "user", "content": f"{tag}-{n}", "p": tag, "n": n}]
                if n % 2:
                    batch.append({"role": "assistant", "content": f"{tag}-{n}b", "p": tag})
                await session.add_items(batch)

    asyncio.run(main())
    """
)


def test_two_processes_append_to_one_session(db_url: str, tmp_path: Path) -> None:
    script = tmp_path / "appender.py"
    script.write_text(APPENDER)
    count = 60
    go = tmp_path / "go"
    processes = []
    for tag in ("A", "B"):
        ready = tmp_path / f"ready-{tag}"
        args = [sys.executable, str(script), db_url, tag, str(count), str(ready), str(go)]
        processes.append((ready, subprocess.Popen(args, cwd=REPO, stderr=subprocess.PIPE)))
    for ready, process in processes:
        while not ready.exists() and process.poll() is None:
            threading.Event().wait(0.005)
    # Both start from an empty database at once: they race on creating the schema as well.
    go.touch()
    for _, process in processes:
        _, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, stderr.decode()

    rows = asyncio.run(read_shared(db_url))
    per_batch = count + count // 2
    assert len(rows) == 2 * per_batch
    assert [seq for seq, _ in rows] == list(range(1, 2 * per_batch + 1))
    for tag in ("A", "B"):
        mine = [item for _, item in rows if item["p"] == tag]
        expected: list[str] = []
        for n in range(count):
            expected.append(f"{tag}-{n}")
            if n % 2:
                expected.append(f"{tag}-{n}b")
        assert [item["content"] for item in mine] == expected
    # A two-item batch is never split by the other process's items.
    contents = [item["content"] for _, item in rows]
    for index, content in enumerate(contents):
        if content.endswith("b"):
            assert contents[index - 1] == content[:-1]


async def read_shared(url: str) -> list[tuple[int, dict[str, Any]]]:
    import json

    async with HistoryStore(url, migrate="check") as store:
        engine = await store.engine()
        async with engine.connect() as connection:
            result = await connection.execute(
                text("SELECT seq, item FROM hs_items WHERE session_id = 'shared' ORDER BY seq")
            )
            rows = [(seq, json.loads(item)) for seq, item in result.all()]
            counters = (
                await connection.execute(
                    text("SELECT last_seq, item_count, turn_count FROM hs_sessions")
                )
            ).one()
    assert tuple(counters) == (len(rows), len(rows), sum(1 for _, i in rows if i["role"] == "user"))
    assert make_url(url).get_backend_name() in ("sqlite", "postgresql")
    return rows
