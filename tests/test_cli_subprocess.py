"""``history-store`` as a real program: the installed entry point in a subprocess, with
stderr on a pipe and on a real terminal (pty) for the progress bar."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest
from cli_support import PROGRAM, cli, export_text, populate

from history_store.testing import StubModelServer


@pytest.fixture
def url(tmp_path: Path) -> str:
    database = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    asyncio.run(populate(database, tmp_path))
    return database


def test_sessions_json(url: str) -> None:
    done = cli("--url", url, "sessions", "--json", "--prefix", "support-7")
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout) == {
        "sessions": [
            {
                "session_id": "support-7",
                "items": 2,
                "turns": 1,
                "created_at": "2025-01-01T08:00:00+00:00",
                "updated_at": "2025-01-01T08:10:00+00:00",
                "metadata": {"customer": "globex"},
            }
        ],
        "next_after": None,
    }


def test_sql_write_is_refused_with_exit_code_1(url: str) -> None:
    done = cli("--url", url, "sql", "DELETE FROM hs_sessions")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "error: refused: `sql` runs read-only queries (SELECT, WITH, EXPLAIN); "
        "attempt to write a readonly database. Use delete/prune/import to change data.\n"
    )


def test_usage_error_exits_2(url: str) -> None:
    done = cli("--url", url, "show")
    assert done.returncode == 2
    assert "the following arguments are required: session" in done.stderr


def test_export_without_a_terminal_prints_no_progress(url: str) -> None:
    done = cli("--url", url, "export")
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        export_text(),
        "exported 3 sessions, 14 items\n",
    )


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_export_draws_a_progress_bar_on_a_terminal(url: str) -> None:
    primary, secondary = os.openpty()
    try:
        process = subprocess.Popen(
            [PROGRAM, "--url", url, "export"], stdout=subprocess.PIPE, stderr=secondary
        )
        os.close(secondary)
        out, _ = process.communicate(timeout=120)
        terminal = _read_all(primary).decode()
    finally:
        os.close(primary)
    assert (process.returncode, out.decode()) == (0, export_text())

    def bar(done: int) -> str:
        filled = 30 * done // 14
        return f"\rexporting [{'#' * filled}{'.' * (30 - filled)}] {done}/14\x1b[K"

    # One redraw per session (4, 8 and 2 items), then the summary on its own line.
    assert terminal == bar(4) + bar(12) + bar(14) + "\r\nexported 3 sessions, 14 items\r\n"


def test_import_from_stdin_then_chat(tmp_path: Path, stub: StubModelServer) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    done = cli("--url", url, "import", "-", stdin=export_text())
    assert (done.returncode, done.stdout, done.stderr) == (0, "imported 3 sessions, 14 items\n", "")
    chat = ("--url", url, "chat", "--base-url", stub.base_url, "--session", "sales-1")
    done = cli(*chat, stdin="Is it far?\n")
    assert (done.returncode, done.stderr) == (0, "")
    # The imported history reached the model: 4 stored items plus the new message.
    assert done.stdout == "assistant: reply 1: saw 5 messages; last user said: Is it far?\n"
