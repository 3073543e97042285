"""A full disk, read-only mounts, files and folders we may not write, a closed pipe: each a
precise ``HistoryStoreError`` naming the file and what to do, never a driver traceback."""

from __future__ import annotations

import asyncio
import os
import pwd
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import PROGRAM
from helpers import other_user

from history_store import DatabasePermissionError, HistoryStore, StorageFullError
from history_store.cli import main


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs mounted for the test (root only), unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


async def test_a_full_disk_is_storage_full_and_the_data_stays_intact(small_disk: Path) -> None:
    path = small_disk / "history.db"
    stored = 0
    async with HistoryStore(f"sqlite+aiosqlite:///{path}") as store:
        session = store.session("s")
        with pytest.raises(StorageFullError) as raised:
            for n in range(10_000):
                await session.add_items([{"role": "user", "content": f"{n} " + "x" * 4000}])
                stored += 1
        assert str(raised.value).startswith(f"{path}: the disk (or quota) is full")
        assert "Free space on the file system holding" in str(raised.value)
        assert stored > 50
        assert len(await session.get_items()) == stored  # readable, nothing torn
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert connection.execute("SELECT item_count FROM hs_sessions").fetchone() == (stored,)


async def test_a_read_only_mount_is_a_permission_error_naming_it(small_disk: Path) -> None:
    path = small_disk / "history.db"
    url = f"sqlite+aiosqlite:///{path}"
    async with HistoryStore(url) as store:
        await store.session("s").add_items([{"role": "user", "content": "before"}])
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(DatabasePermissionError) as raised:
        async with HistoryStore(url) as store:
            await store.session("s").add_items([{"role": "user", "content": "after"}])
    assert f"cannot write {path}" in str(raised.value)
    assert f"the file system holding {small_disk} is mounted read-only" in str(raised.value)
    with pytest.raises(DatabasePermissionError, match="mounted read-only"):
        await HistoryStore(f"sqlite+aiosqlite:///{small_disk / 'new.db'}").engine()


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder the second user can reach but not write."""
    with other_user.folder(0o755) as folder:
        yield folder


WRITE_AS_OTHER = """
import asyncio, sys
from history_store import HistoryStore, HistoryStoreError

async def main(path):
    async with HistoryStore("sqlite+aiosqlite:///" + path) as store:
        await store.session("s").add_items([{"role": "user", "content": "hi"}])

for path in sys.argv[1:]:
    try:
        asyncio.run(main(path))
        print("ok")
    except HistoryStoreError as exc:
        print(type(exc).__name__, exc, sep=": ")
"""


def _seed(path: Path) -> None:
    async def write() -> None:
        async with HistoryStore(f"sqlite+aiosqlite:///{path}") as store:
            await store.session("s").add_items([{"role": "user", "content": "seed"}])

    asyncio.run(write())


def test_unwritable_files_and_folders_name_the_cause(
    second_user: pwd.struct_passwd, shared_folder: Path
) -> None:
    user = second_user
    uid, gid = user.pw_uid, user.pw_gid
    cases = {}
    # A 0444 file of the user's own.
    own = shared_folder / "own"
    own.mkdir()
    _seed(own / "history.db")
    for path in own.iterdir():
        os.chown(path, uid, gid)
    os.chown(own, uid, gid)
    (own / "history.db").chmod(0o444)
    cases["0444 file"] = (own / "history.db", "mode 0444) is not writable by this user")
    # A 0555 folder of the user's own: no file can be created in it.
    closed = shared_folder / "closed"
    closed.mkdir()
    os.chown(closed, uid, gid)
    closed.chmod(0o555)
    cases["0555 folder"] = (closed / "history.db", f"the folder {closed} is not writable")
    # Another user's (root's) 0644 file in a folder root owns.
    theirs = shared_folder / "theirs"
    theirs.mkdir()
    _seed(theirs / "history.db")
    (theirs / "history.db").chmod(0o644)
    cases["another user's 0644 file"] = (theirs / "history.db", "(owner uid 0, mode 0644)")
    done = other_user.run_python(user, WRITE_AS_OTHER, *(str(path) for path, _ in cases.values()))
    assert done.returncode == 0, done.stderr
    for (name, (path, expected)), line in zip(cases.items(), done.stdout.splitlines(), strict=True):
        assert line.startswith(f"DatabasePermissionError: cannot write {path}"), (name, line)
        assert expected in line, (name, line)
        assert "password" not in line and "server" not in line


def test_a_closed_pipe_ends_export_quietly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    _seed_many(tmp_path / "h.db")
    shell = f"{PROGRAM} --url {url} export | head -c 100 > /dev/null; echo ${{PIPESTATUS[0]}}"
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=120)
    assert done.stderr == ""
    assert done.stdout == "141\n"


def _seed_many(path: Path) -> None:
    async def write() -> None:
        async with HistoryStore(f"sqlite+aiosqlite:///{path}") as store:
            for n in range(200):
                await store.session(f"s{n}").add_items([{"role": "user", "content": "x" * 2000}])

    asyncio.run(write())


BAD_OPTIONS = [
    ("sessions", "--limit", "-1"),
    ("sessions", "--limit", "99999999999999999999999"),
    ("sessions", "--idle-days", "nan"),
    ("sessions", "--idle-days", "1e300"),
    ("show", "x", "--turn", "99999999999999999999"),
    ("show", "x", "--last", "-5"),
    ("search", "x", "--limit", "0"),
    ("prune", "--keep-last-turns", "99999999999999"),
    ("copy", "a.db", "b.db", "--batch-size", "0"),
    ("migrate-from", "sdk", "a.db", "--batch-size", "x"),
    ("export-to", "sdk", "a.db", "--batch-size", "-1"),
    ("import", "-", "--max-line-length", "0"),
]


@pytest.mark.parametrize("argv", BAD_OPTIONS, ids=[" ".join(a) for a in BAD_OPTIONS])
def test_bad_numeric_options_are_usage_errors(
    tmp_path: Path, argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--url", f"sqlite:///{tmp_path / 'h.db'}", *argv])
    assert exited.value.code == 2
    assert f"error: argument {argv[-2]}: expected" in capsys.readouterr().err


def test_an_age_too_large_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    _seed(tmp_path / "h.db")
    done = subprocess.run(
        [
            PROGRAM,
            "--url",
            f"sqlite:///{tmp_path / 'h.db'}",
            "prune",
            "--older-than",
            "9" * 15 + "d",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (
        1,
        f"error: the age '{'9' * 15}d' is more than 3650000 days\n",
    )
