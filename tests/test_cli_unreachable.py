"""A PostgreSQL server that cannot be reached: every command prints one ``error:`` line naming
the database (password hidden) and exits 1, never a traceback.

The server is 127.0.0.1 port 1, where nothing listens: the connection is refused at once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cli_support import populate, run_program

from history_store.cli import main

UNREACHABLE = "postgresql://me:s3cret@127.0.0.1:1/nowhere"
SHOWN = "postgresql+asyncpg://me:***@127.0.0.1:1/nowhere"
ONE_LINE = (
    f"error: cannot open the database at {SHOWN}: [Errno 111] Connect call failed "
    "('127.0.0.1', 1). Check that the server is running and reachable, and the user, "
    "password and database name.\n"
)


@pytest.fixture
def sqlite_with_history(tmp_path: Path) -> Path:
    path = tmp_path / "history.db"
    asyncio.run(populate(f"sqlite+aiosqlite:///{path}", tmp_path))
    return path


@pytest.mark.parametrize(
    "command",
    [
        ["--url", UNREACHABLE, "db", "upgrade"],
        ["--url", UNREACHABLE, "db", "current"],
        ["copy", "{sqlite}", UNREACHABLE],
        ["--url", UNREACHABLE, "export-to", "sdk", "{tmp}/back.db"],
    ],
    ids=["db upgrade", "db current", "copy", "export-to"],
)
def test_the_installed_command_prints_one_line(
    command: list[str], sqlite_with_history: Path, tmp_path: Path
) -> None:
    argv = [arg.format(sqlite=sqlite_with_history, tmp=tmp_path) for arg in command]
    done = run_program(*argv)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", ONE_LINE)


@pytest.mark.parametrize(
    "command",
    [
        ["db", "upgrade"],
        ["db", "downgrade", "base"],
        ["db", "current"],
        ["db", "stamp", "head"],
        ["sessions"],
        ["show", "x"],
        ["search", "x"],
        ["sql", "SELECT 1"],
        ["stats"],
        ["export"],
        ["delete", "x"],
        ["prune", "--older-than", "30d"],
        ["migrate-from", "sdk", UNREACHABLE, "--to", "{tmp}/ours.db"],
    ],
)
def test_every_command_names_the_database(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--url", UNREACHABLE, *(arg.format(tmp=tmp_path) for arg in command)])
    out, err = capsys.readouterr()
    assert (code, out, err) == (1, "", ONE_LINE)
