"""``history-store db ...`` / ``migrate-from`` / ``export-to`` / ``copy`` from the command line,
``alembic`` from the repository, and the schema-mismatch errors at open."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sqlite3
import subprocess
from pathlib import Path

import pytest
from agents import SQLiteSession
from agents.extensions.memory import SQLAlchemySession
from cli_support import run_program
from sqlalchemy import text

from history_store import HistoryStore, SchemaOutOfDateError, schema, tables
from history_store._engine import make_engine, resolve_url
from history_store.cli import main

REPO = Path(__file__).resolve().parent.parent
REVISIONS = [r.revision for r in reversed(schema.history())]  # oldest first
HEAD = schema.head_revision()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def table_names(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    return sorted(name for (name,) in rows)


def test_db_commands_walk_every_revision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'h.db'}"
    assert (
        run_cli(capsys, "--url", url, "db", "current", "--json")[1]
        == json.dumps({"current": None, "head": HEAD, "up_to_date": False}) + "\n"
    )
    for revision in REVISIONS:
        code, out, _ = run_cli(capsys, "--url", url, "db", "upgrade", revision)
        assert (code, out) == (0, f"upgraded {url}: now at revision {revision}\n")
    assert run_cli(capsys, "db", "current", "--url", url)[1] == f"{HEAD} (head)\n"
    for revision, below in zip(reversed(REVISIONS), reversed([None, *REVISIONS[:-1]]), strict=True):
        code, out, _ = run_cli(capsys, "--url", url, "db", "downgrade", below or "base")
        assert code == 0 and out.endswith(
            f"now at revision {below or 'base (no history_store schema)'}\n"
        )
        assert asyncio.run(schema.current(url)) == below, revision
    assert [n for n in table_names(tmp_path / "h.db") if n.startswith("hs_")] == []
    assert run_cli(capsys, "--url", url, "db", "stamp", "base")[0] == 0
    assert asyncio.run(schema.current(url)) is None
    code, out, _ = run_cli(capsys, "db", "history", "--json")
    listed = json.loads(out)
    assert [entry["revision"] for entry in listed] == list(reversed(REVISIONS))
    assert [entry["is_head"] for entry in listed] == [True] + [False] * (len(REVISIONS) - 1)
    text_lines = run_cli(capsys, "db", "history")[1].splitlines()
    assert text_lines[0].startswith(
        f"{REVISIONS[-2] if len(REVISIONS) > 1 else 'base'} -> {HEAD} (head)"
    )


# Every table of the newest revision, as the refusal names them.
HEAD_TABLES = ", ".join(sorted(tables.metadata.tables))


def test_stamp_refuses_a_revision_whose_tables_are_absent(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = resolve_url(db_url).render_as_string(hide_password=True)
    code, out, err = run_cli(capsys, "--url", db_url, "db", "stamp", "head")
    assert (code, out) == (1, "")
    assert err == (
        f"error: refused: the database at {shown} has no tables {HEAD_TABLES}, which "
        "revision 'head' has; stamping records a schema that is already there. To create it, "
        f"run: history-store --url '{shown}' db upgrade head. To record the revision anyway, "
        "add --force.\n"
    )
    assert asyncio.run(schema.current(db_url)) is None
    # Once the tables are there, stamping a revision that has them is accepted (0002 has the
    # tables of 0001; head has more).
    assert run_cli(capsys, "--url", db_url, "db", "upgrade", REVISIONS[0])[0] == 0
    assert run_cli(capsys, "--url", db_url, "db", "stamp", REVISIONS[1]) == (
        0,
        f"stamped {shown}: now at revision {REVISIONS[1]}\n",
        "",
    )


def test_stamp_with_force_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    assert run_cli(capsys, "--url", url, "db", "stamp", HEAD, "--force") == (
        0,
        f"stamped {url}: now at revision {HEAD}\n",
        f"warning: stamped {HEAD} (--force) although the database lacks {HEAD_TABLES}; "
        "commands will fail until the tables exist\n",
    )
    assert asyncio.run(schema.current(url)) == HEAD


def test_the_installed_command_refuses_to_stamp_an_empty_database(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    done = run_program("--url", f"sqlite:///{path}", "db", "stamp", "head")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("error: refused: the database at ")
    assert done.stderr.count("\n") == 1
    assert not path.exists()


@pytest.mark.parametrize("action", [["upgrade", "nonsense"], ["stamp", "nonsense"]])
def test_unknown_revision_is_one_error_line(
    action: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'h.db'}"
    assert run_cli(capsys, "--url", url, "db", *action) == (
        1,
        "",
        "error: Can't locate revision identified by 'nonsense'; list the revisions with: "
        "history-store db history\n",
    )


def test_alembic_from_the_repository(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'alembic.db'}"
    alembic = REPO / ".venv" / "bin" / "alembic"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for args in (["upgrade", "head"], ["downgrade", "base"], ["upgrade", "head"]):
        subprocess.run(
            [str(alembic), "-x", f"url={url}", *args], cwd=REPO, env=env, check=True,
            capture_output=True, timeout=120,
        )  # fmt: skip
    assert asyncio.run(schema.current(url)) == HEAD


async def test_mismatch_names_the_command_and_the_command_fixes_it(db_url: str) -> None:
    async with HistoryStore(db_url, migrate="check") as store:
        with pytest.raises(SchemaOutOfDateError) as caught:
            await store.session("s").get_items()
    error = caught.value
    assert (error.current, error.expected) == (None, HEAD)
    assert error.command == f"history-store --url '{resolve_url(db_url)}' db upgrade"
    assert error.command in str(error)
    # Every older revision is reported as such, and `auto` upgrades from it.
    for revision in REVISIONS[:-1]:
        await schema.downgrade(db_url, "base")
        await schema.upgrade(db_url, revision)
        async with HistoryStore(db_url, migrate="check") as store:
            with pytest.raises(SchemaOutOfDateError) as caught:
                await store.session("s").add_items([{"role": "user", "content": "x"}])
        assert caught.value.current == revision and f"at revision {revision!r}" in str(caught.value)
        async with HistoryStore(db_url, migrate="auto") as store:
            assert await store.session("s").get_items() == []
        assert await schema.current(db_url) == HEAD
    # The exact command, run as given, makes the database usable.
    await schema.downgrade(db_url, "base")
    argv = shlex.split(error.command)[1:]
    assert await asyncio.to_thread(main, argv) == 0
    async with HistoryStore(db_url, migrate="check") as store:
        assert await store.session("s").get_items() == []


async def test_newer_database_asks_to_upgrade_the_package(db_url: str) -> None:
    await schema.upgrade(db_url)
    engine = make_engine(resolve_url(db_url))
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    await engine.dispose()
    for mode in ("auto", "check"):
        async with HistoryStore(db_url, migrate=mode) as store:  # type: ignore[arg-type]
            with pytest.raises(SchemaOutOfDateError) as caught:
                await store.session("s").get_items()
        assert caught.value.current == "9999_future"
        assert caught.value.command.startswith("pip install --upgrade history-store")
        assert f"db downgrade {HEAD}" in str(caught.value)


async def test_database_with_only_the_sdk_tables(tmp_path: Path, pg_url: str) -> None:
    path = tmp_path / "sdk.db"
    sdk = SQLiteSession("conv", path)
    await sdk.add_items([{"role": "user", "content": "hi"}])
    pg_sdk = SQLAlchemySession.from_url("conv", url=pg_url, create_tables=True)
    await pg_sdk.add_items([{"role": "user", "content": "hi"}])
    for url in (f"sqlite+aiosqlite:///{path}", pg_url):
        async with HistoryStore(url, migrate="check") as store:
            with pytest.raises(SchemaOutOfDateError, match="has no history_store schema"):
                await store.session("conv").get_items()
    # `auto` creates our tables beside the SDK's, which keep their rows.
    async with HistoryStore(f"sqlite+aiosqlite:///{path}", migrate="auto") as store:
        assert await store.session("conv").get_items() == []
    assert await sdk.get_items() == [{"role": "user", "content": "hi"}]
    assert {"agent_messages", "agent_sessions", "hs_items", "hs_sessions"} <= set(table_names(path))
    sdk.close()
    await pg_sdk.engine.dispose()


async def test_tables_without_recorded_revision_say_stamp(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    from history_store.tables import metadata

    path = tmp_path / "bare.db"
    sync_engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(sync_engine)
    sync_engine.dispose()
    for mode in ("auto", "check"):
        async with HistoryStore(f"sqlite+aiosqlite:///{path}", migrate=mode) as store:  # type: ignore[arg-type]
            with pytest.raises(SchemaOutOfDateError) as caught:
                await store.session("s").get_items()
        assert caught.value.command == (
            f"history-store --url 'sqlite+aiosqlite:///{path}' db stamp {HEAD}"
        )


def test_db_upgrade_of_tables_without_recorded_revision_says_stamp(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sqlalchemy import create_engine

    from history_store.tables import metadata

    path = tmp_path / "bare.db"
    sync_engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(sync_engine)
    sync_engine.dispose()
    url = f"sqlite+aiosqlite:///{path}"
    code, out, err = run_cli(capsys, "--url", url, "db", "upgrade")
    assert (code, out) == (1, "")
    assert err.startswith("error: the database at ")
    assert f"run: history-store --url '{url}' db stamp {HEAD};" in err
    assert "alembic_version" not in table_names(path)


def test_migrate_export_copy_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sdk_path = tmp_path / "sdk.db"
    sdk = SQLiteSession("c1", sdk_path)
    asyncio.run(sdk.add_items([{"role": "user", "content": "one"}]))
    sdk.close()
    ours = tmp_path / "ours.db"

    code, out, _ = run_cli(
        capsys, "migrate-from", "sdk", str(sdk_path), "--to", str(ours), "--dry-run"
    )
    assert (code, out.splitlines()[-1]) == (0, (
        f"would import 1 sessions, 1 items from sqlite+aiosqlite:///{sdk_path} into "
        f"sqlite+aiosqlite:///{ours}; 0 already there, 0 with unusable ids, 0 rows left out"
    ))  # fmt: skip
    assert not ours.exists()
    assert run_cli(capsys, "migrate-from", "sdk", str(sdk_path), "--to", str(ours))[0] == 0
    code, out, _ = run_cli(
        capsys, "--json", "migrate-from", "sdk", str(sdk_path), "--to", str(ours)
    )
    report = json.loads(out)
    assert [(s["session_id"], s["status"]) for s in report["sessions"]] == [("c1", "exists")]
    code, out, _ = run_cli(capsys, "copy", str(ours), str(tmp_path / "copy.db"), "--json")
    assert {k: json.loads(out)[k] for k in ("sessions", "copied", "items_total")} == {
        "sessions": 1, "copied": 1, "items_total": 1
    }  # fmt: skip
    code, out, _ = run_cli(capsys, "--url", f"sqlite:///{tmp_path / 'copy.db'}",
                           "export-to", "sdk", str(tmp_path / "back.db"))  # fmt: skip
    assert code == 0 and out.startswith("exported 1 sessions, 1 items")
    back = SQLiteSession("c1", tmp_path / "back.db")
    assert asyncio.run(back.get_items()) == [{"role": "user", "content": "one"}]
    back.close()
    code, _, err = run_cli(capsys, "migrate-from", "sdk", str(tmp_path / "missing.db"))
    assert code == 1 and err.startswith("error: no database at")
