"""``export -o FILE``: never through a planted link, owner-only, never over a file unasked."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest
from cli_support import export_text, populate, run_program

from history_store import OutputExistsError, SessionNotFoundError
from history_store.tools.transfer import export


@pytest.fixture
def url(tmp_path: Path) -> str:
    database = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    asyncio.run(populate(database, tmp_path))
    return database


def test_export_as_root_never_writes_through_a_planted_partial_link(
    url: str, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # a folder another user can write, as /tmp
    victim = tmp_path / "root-owned.conf"
    victim.write_text("keep me\n")
    target = shared / "backup.jsonl"
    # What another user plants: the old fixed temporary name as a link to root's file.
    (shared / "backup.jsonl.partial").symlink_to(victim)

    done = run_program("--url", url, "export", "-o", str(target))

    assert (done.returncode, done.stderr) == (0, "exported 3 sessions, 14 items\n")
    assert victim.read_text() == "keep me\n"
    assert not target.is_symlink()
    assert target.read_text(encoding="utf-8") == export_text()
    assert stat.S_IMODE(target.lstat().st_mode) == 0o600
    # Only the target and the planted link: no temporary file is left behind.
    assert sorted(p.name for p in shared.iterdir()) == ["backup.jsonl", "backup.jsonl.partial"]


def test_export_refuses_an_existing_file_unless_forced(url: str, tmp_path: Path) -> None:
    target = tmp_path / "backup.jsonl"
    target.write_text("an older backup\n")
    target.chmod(0o644)

    done = run_program("--url", url, "export", "-o", str(target))
    assert done.returncode == 1
    assert done.stderr == (
        f"error: {target} already exists; nothing was written. Pass --force (force=True) to "
        "replace it, or choose another file.\n"
    )
    assert target.read_text() == "an older backup\n"

    done = run_program("--url", url, "export", "-o", str(target), "--force")
    assert done.returncode == 0
    assert target.read_text(encoding="utf-8") == export_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_forced_export_replaces_a_link_not_what_it_points_to(url: str, tmp_path: Path) -> None:
    victim = tmp_path / "elsewhere.txt"
    victim.write_text("untouched\n")
    target = tmp_path / "backup.jsonl"
    target.symlink_to(victim)
    assert run_program("--url", url, "export", "-o", str(target)).returncode == 1
    assert run_program("--url", url, "export", "-o", str(target), "--force").returncode == 0
    assert victim.read_text() == "untouched\n"
    assert not target.is_symlink()
    assert json.loads(target.read_text().splitlines()[0])["format"] == "history_store.export"


async def test_failed_export_leaves_no_file(url: str, tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    with pytest.raises(OutputExistsError):
        await export(tmp_path / "fixture.jsonl", url)
    with pytest.raises(SessionNotFoundError):
        await export(target, url, session_ids=["no-such"])
    assert not [name for name in os.listdir(tmp_path) if "out.jsonl" in name]
