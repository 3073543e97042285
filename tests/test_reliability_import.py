"""Import: no spliced conversations, bounded memory, bad lines named, counts that are true."""

from __future__ import annotations

import io
import json
import subprocess
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from cli_support import PROGRAM, run_program

from history_store import HistoryStore, ImportConflictError, ImportFormatError, export, import_
from history_store.schema import upgrade

HEADER = '{"format": "history_store.export", "version": 1}\n'


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def session_line(
    session_id: str, items: int, *, turns: int = 1, last_seq: int | None = None
) -> str:
    header = {
        "session_id": session_id,
        "created_at": "2025-01-01T00:00:00+00:00",
        "updated_at": "2025-01-01T00:00:00+00:00",
        "metadata": None,
        "items": items,
        "turns": turns,
        "last_seq": items if last_seq is None else last_seq,
    }
    return json.dumps({"session": header}) + "\n"


def item_line(seq: int, item: Any, *, turn: int = 1) -> str:
    line = {"seq": seq, "turn": turn, "created_at": "2025-01-01T00:00:00+00:00", "item": item}
    return json.dumps(line) + "\n"


def good_session(session_id: str) -> str:
    return session_line(session_id, 2) + item_line(1, user("hi")) + item_line(2, user("there"))


async def _restarted_session(url: str, backup: Path) -> None:
    """The issue's story: a backup of the old conversation, then the session cleared and a
    new conversation started in it."""
    await upgrade(url)
    async with HistoryStore(url) as store:
        session = store.session("s")
        await session.add_items([user("OLD: hi"), user("OLD: $10,000")])
        await export(backup, store)
        await session.clear_session()
        for text in ("NEW: hi", "NEW: hello?", "NEW: anyone?"):
            await session.add_items([user(text)])


NEW = [user("NEW: hi"), user("NEW: hello?"), user("NEW: anyone?")]


async def _items(url: str) -> list[Any]:
    async with HistoryStore(url) as store:
        return await store.session("s").get_items()


async def test_a_restarted_session_is_a_conflict_left_untouched(
    db_url: str, tmp_path: Path
) -> None:
    backup = tmp_path / "backup.jsonl"
    await _restarted_session(db_url, backup)
    with pytest.raises(ImportConflictError, match=r"line 2: session 's' already holds"):
        await import_(backup, db_url)
    assert await _items(db_url) == NEW

    skipped = await import_(backup, db_url, on_conflict="skip")
    assert (skipped.sessions, skipped.items, skipped.skipped) == (0, 0, 1)
    assert await _items(db_url) == NEW

    replaced = await import_(backup, db_url, on_conflict="replace")
    assert (replaced.sessions, replaced.items, replaced.skipped) == (1, 2, 0)
    assert await _items(db_url) == [user("OLD: hi"), user("OLD: $10,000")]
    async with HistoryStore(db_url) as store:
        await store.session("s").add_items([user("next")])  # counters follow the file's
    assert (await _items(db_url))[-1] == user("next")


def test_cli_import_conflict_choices(tmp_path: Path) -> None:
    import asyncio

    url = f"sqlite:///{tmp_path / 'h.db'}"
    backup = tmp_path / "backup.jsonl"
    asyncio.run(_restarted_session(url, backup))
    done = run_program("--url", url, "import", str(backup))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("error: line 2: session 's' already holds a history that is")
    assert "--on-conflict skip" in done.stderr
    done = run_program("--url", url, "import", str(backup), "--on-conflict", "skip")
    assert (done.returncode, done.stdout) == (
        0,
        "imported 0 sessions, 0 items; skipped 1 conflicting session\n",
    )
    done = run_program("--url", url, "import", str(backup), "--on-conflict", "replace")
    assert (done.returncode, done.stdout) == (0, "imported 1 session, 2 items\n")
    assert asyncio.run(_items(url)) == [user("OLD: hi"), user("OLD: $10,000")]


async def test_sessions_before_a_conflict_are_imported(sqlite_url: str) -> None:
    async with HistoryStore(sqlite_url) as store:
        await store.session("b").add_items([user("something else")])
    text = HEADER + good_session("a") + good_session("b") + good_session("c")
    with pytest.raises(ImportConflictError, match="session 'b'"):
        await import_(io.StringIO(text), sqlite_url)
    async with HistoryStore(sqlite_url) as store:
        assert len(await store.session("a").get_items()) == 2
        assert await store.session("b").get_items() == [user("something else")]
        assert await store.session("c").get_items() == []


def test_a_newline_free_stream_is_refused_at_the_cap_not_held(tmp_path: Path) -> None:
    """The CLI reads stdin until the cap, then stops: the feeder, which could send 2 GB, is
    cut off after about the cap."""
    url = f"sqlite:///{tmp_path / 'h.db'}"
    process = subprocess.Popen(
        [PROGRAM, "--url", url, "import", "-", "--max-line-length", "1000000"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    sent = 0

    def feed() -> None:
        nonlocal sent
        assert process.stdin is not None
        try:
            process.stdin.write(HEADER.encode())
            block = b"x" * (1 << 20)
            while sent < 2 << 30:
                process.stdin.write(block)
                sent += len(block)
        except (BrokenPipeError, ValueError):
            pass

    feeder = threading.Thread(target=feed)
    feeder.start()
    out, err = process.communicate(timeout=120)
    feeder.join(30)
    assert process.returncode == 1 and out == b""
    assert err.decode().startswith(
        "error: line 2: the line is longer than 1000000 characters (the limit; raise it with "
        "--max-line-length, max_line_length=)."
    )
    assert sent < 64 << 20  # stopped long before the 2 GB


async def test_import_memory_is_bounded_by_the_line_cap(sqlite_url: str) -> None:
    stream = io.StringIO(HEADER + good_session("a") + "y" * 20_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(ImportFormatError, match=r"^line 5: the line is longer than 100000 "):
            await import_(stream, sqlite_url, max_line_length=100_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000  # the 20 MB line was never held
    async with HistoryStore(sqlite_url) as store:
        assert len(await store.session("a").get_items()) == 2  # the session before it was


DEEP = "[" * 100_000 + "]" * 100_000
BAD_LINES = {
    "seq beyond BIGINT": (
        item_line(2**63, user("x")),
        "line 6: 'seq' is 9223372036854775808, outside 1..9223372036854775807",
    ),
    "turn beyond INTEGER": (
        item_line(1, user("x"), turn=2**31),
        "line 6: 'turn' is 2147483648, outside 0..2147483647",
    ),
    "JSON nested 100k deep": (
        '{"seq": 1, "turn": 1, "created_at": "2025-01-01T00:00:00+00:00", "item": ' + DEEP + "}\n",
        "line 6: the JSON is nested too deeply to read",
    ),
}


@pytest.mark.parametrize("bad", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_a_bad_line_is_named_and_the_sessions_before_it_are_imported(
    tmp_path: Path, bad: tuple[str, str]
) -> None:
    line, message = bad
    url = f"sqlite:///{tmp_path / 'h.db'}"
    source = tmp_path / "in.jsonl"
    source.write_text(HEADER + good_session("good") + session_line("bad", 1) + line)
    done = run_program("--url", url, "import", str(source))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"error: {message}. Nothing of this session was imported")
    assert "Traceback" not in done.stderr
    shown = run_program("--url", url, "--json", "sessions")
    assert [s["session_id"] for s in json.loads(shown.stdout)["sessions"]] == ["good"]


@pytest.mark.parametrize("version", ["1.0", "true", '"1"'])
async def test_the_header_version_must_be_the_integer_1(sqlite_url: str, version: str) -> None:
    text = '{"format": "history_store.export", "version": ' + version + "}\n"
    with pytest.raises(ImportFormatError, match="is not supported"):
        await import_(io.StringIO(text + good_session("a")), sqlite_url)


async def test_a_session_listed_twice_is_an_error(sqlite_url: str) -> None:
    text = HEADER + good_session("a") + good_session("b") + good_session("a")
    with pytest.raises(
        ImportFormatError, match=r"^line 8: session 'a' is listed twice \(first on line 2\)"
    ):
        await import_(io.StringIO(text), sqlite_url)


async def test_the_summary_counts_rows_inserted(sqlite_url: str) -> None:
    text = HEADER + good_session("a")
    first = await import_(io.StringIO(text), sqlite_url)
    again = await import_(io.StringIO(text), sqlite_url)
    assert (first.sessions, first.items) == (1, 2)
    assert (again.sessions, again.items) == (1, 0)
    longer = session_line("a", 3) + item_line(1, user("hi")) + item_line(2, user("there"))
    more = await import_(io.StringIO(HEADER + longer + item_line(3, user("more"))), sqlite_url)
    assert (more.sessions, more.items) == (1, 1)
