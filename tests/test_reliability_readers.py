"""A read-only command run by another user never leaves files the database's owner cannot
use (issue 15.5): the owner's next write works."""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import other_user

WRITE = """
import asyncio, sys
from history_store import HistoryStore

async def main():
    async with HistoryStore("sqlite+aiosqlite:///" + sys.argv[1]) as store:
        await store.session("s").add_items([{"role": "user", "content": sys.argv[2]}])
        print(len(await store.session("s").get_items()))

asyncio.run(main())
"""

READ = """
import sys
from history_store.cli import main
for command in (["sessions"], ["show", "s"], ["search", "hello"], ["stats"], ["export"],
                ["sql", "SELECT count(*) FROM hs_items"]):
    code = main(["--url", "sqlite:///" + sys.argv[1], *command])
    print("exit", code, file=sys.stderr)
"""


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder every user may write (as /tmp is), where the owner keeps a 0644 database."""
    with other_user.folder(0o1777) as folder:
        yield folder


def test_another_users_reader_leaves_the_owner_able_to_write(
    second_user: pwd.struct_passwd, third_user: pwd.struct_passwd, open_folder: Path
) -> None:
    owner, reader = second_user, third_user
    path = open_folder / "history.db"
    first = other_user.run_python(owner, WRITE, str(path), "hello")
    assert (first.returncode, first.stdout) == (0, "1\n"), first.stderr
    path.chmod(0o644)  # readable by others, as a shared log might be
    assert sorted(p.name for p in open_folder.iterdir()) == ["history.db"]  # closed: no pair

    read = other_user.run_python(reader, READ, str(path))
    assert read.stderr.count("exit 0") == 6, read.stderr
    assert "s  " in read.stdout and "hello" in read.stdout

    # Whatever the reader left is the owner's, or usable by the owner.
    for leftover in open_folder.iterdir():
        assert leftover.stat().st_uid == owner.pw_uid, leftover
    again = other_user.run_python(owner, WRITE, str(path), "still mine")
    assert (again.returncode, again.stdout) == (0, "2\n"), again.stderr
    assert os.stat(path).st_uid == owner.pw_uid


READ_SLOWLY = """
import asyncio, os, sys, time
from history_store import DatabaseBusyError
from history_store.tools._open import reading

async def main():
    try:
        async with reading("sqlite:///" + sys.argv[1]) as engine:
            print("reading", flush=True)
            while not os.path.exists(sys.argv[2]):
                time.sleep(0.05)
    except DatabaseBusyError as exc:
        print("busy:", exc)
    else:
        print("clean")

asyncio.run(main())
"""


def test_a_write_during_a_lock_free_read_is_reported(
    second_user: pwd.struct_passwd, third_user: pwd.struct_passwd, open_folder: Path
) -> None:
    owner, reader = second_user, third_user
    path = open_folder / "history.db"
    assert other_user.run_python(owner, WRITE, str(path), "hello").returncode == 0
    path.chmod(0o644)
    go = open_folder / "go"
    process = other_user.start_python(reader, READ_SLOWLY, str(path), str(go))
    assert process.stdout is not None and process.stdout.readline() == "reading\n"
    assert other_user.run_python(owner, WRITE, str(path), "meanwhile").returncode == 0
    go.touch()
    out, err = process.communicate(timeout=60)
    assert out.startswith("busy: sqlite+aiosqlite:///"), (out, err)
    assert "Run the command again." in out
