"""Schema revisions: up and down over every bundled revision, check mode, alembic, the wheel.

Written over ``history_store.schema.history()``, so revisions added later are covered too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from history_store import HistoryStore, SchemaOutOfDateError, schema

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
OUR_TABLES = {"hs_sessions", "hs_items"}
ITEMS = [
    {"role": "user", "content": "caf\u00e9 \U0001f600", "__fake_id__": 1},
    {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "c", "output": "ok", "provider_data": {"x": 1}},
]
ABOVE_BASE = [r.revision for r in schema.history() if r.down_revision is not None]


async def tables(url: str) -> set[str]:
    async with HistoryStore(url, migrate="auto") as store:
        engine = await store._engines.get()  # no schema check: the tables may be missing
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    return set(names)


async def stored_items(url: str) -> list[tuple[str, int, str]]:
    async with HistoryStore(url, migrate="check") as store:
        engine = await store.engine()
        async with engine.connect() as connection:
            result = await connection.execute(
                text("SELECT session_id, seq, item FROM hs_items ORDER BY session_id, seq")
            )
            return [tuple(row) for row in result.all()]  # type: ignore[misc]


async def populate(url: str) -> None:
    async with HistoryStore(url, migrate="check") as store:
        await store.session("a").add_items(ITEMS)
        await store.session("b").add_items(ITEMS[:1])
        await store.session("a").pop_item()
        await store.session("a").add_items(ITEMS[2:])


async def test_base_head_base_head(db_url: str) -> None:
    head = schema.head_revision()
    assert await schema.current(db_url) is None
    await schema.upgrade(db_url)
    assert await schema.current(db_url) == head
    assert await tables(db_url) >= OUR_TABLES
    await populate(db_url)
    assert len(await stored_items(db_url)) == 4

    await schema.downgrade(db_url, "base")
    assert await schema.current(db_url) is None
    assert await tables(db_url) & OUR_TABLES == set()

    await schema.upgrade(db_url, "head")
    assert await schema.current(db_url) == head
    assert await stored_items(db_url) == []
    await populate(db_url)
    async with HistoryStore(db_url, migrate="check") as store:
        assert await store.session("a").get_items() == ITEMS
        assert await store.session("b").get_items() == ITEMS[:1]


@pytest.mark.parametrize("revision", ABOVE_BASE)
async def test_data_survives_down_and_up_through_each_revision(db_url: str, revision: str) -> None:
    """From head down to just below ``revision`` and back: every item byte-identical."""
    down_to = next(r.down_revision for r in schema.history() if r.revision == revision)
    assert down_to is not None
    await schema.upgrade(db_url)
    await populate(db_url)
    before = await stored_items(db_url)
    assert [json.loads(item) for _, _, item in before] == [*ITEMS[:2], ITEMS[2], ITEMS[0]]

    await schema.downgrade(db_url, down_to)
    assert await schema.current(db_url) == down_to
    await schema.upgrade(db_url, revision)
    assert await schema.current(db_url) == revision
    await schema.upgrade(db_url)
    assert await stored_items(db_url) == before
    async with HistoryStore(db_url, migrate="check") as store:
        session = store.session("a")
        assert await session.get_items() == [*ITEMS[:2], ITEMS[2]]
        # seq keeps counting from where it was: the counters survived too.
        await session.add_items([{"role": "user", "content": "after"}])
    assert (await stored_items(db_url))[-2] == ("a", 5, '{"role": "user", "content": "after"}')


async def test_check_mode_on_an_empty_database(db_url: str) -> None:
    store = HistoryStore(db_url, migrate="check")
    try:
        with pytest.raises(SchemaOutOfDateError) as raised:
            await store.session("x").get_items()
    finally:
        await store.close()
    error = raised.value
    assert error.current is None
    assert error.expected == schema.head_revision()
    assert error.command == f"history-store --url '{store.url}' db upgrade"
    assert f"Run: {error.command}" in str(error)
    assert "has no history_store schema" in str(error)


async def stamp_unknown(url: str) -> None:
    async with HistoryStore(url, migrate="auto") as store:
        engine = await store._engines.get()
        async with engine.begin() as connection:
            await connection.execute(
                text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
            )
            await connection.execute(text("INSERT INTO alembic_version VALUES ('9999_future')"))


@pytest.mark.parametrize("mode", ["check", "auto"])
async def test_unknown_revision_is_refused(db_url: str, mode: Any) -> None:
    await stamp_unknown(db_url)
    store = HistoryStore(db_url, migrate=mode)
    try:
        with pytest.raises(SchemaOutOfDateError) as raised:
            await store.session("x").add_items([{"role": "user", "content": "x"}])
    finally:
        await store.close()
    error = raised.value
    assert error.current == "9999_future"
    assert "newer than this version of history_store knows" in str(error)
    assert f"db downgrade {schema.head_revision()}" in str(error)
    assert error.command.startswith("pip install --upgrade history-store")
    # Nothing was created on a database from the future.
    assert await tables(db_url) == {"alembic_version"}


@pytest.mark.skipif(len(schema.history()) < 2, reason="needs an older revision")
async def test_check_mode_on_an_older_revision(db_url: str) -> None:
    older = schema.history()[1].revision
    await schema.upgrade(db_url, older)
    store = HistoryStore(db_url, migrate="check")
    try:
        with pytest.raises(SchemaOutOfDateError) as raised:
            await store.session("x").get_items()
    finally:
        await store.close()
    assert raised.value.current == older
    assert f"is at revision {older!r}" in str(raised.value)
    async with HistoryStore(db_url, migrate="auto") as store:
        assert await store.session("x").get_items() == []
    assert await schema.current(db_url) == schema.head_revision()


def alembic(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "alembic"), "-x", f"url={url}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_alembic_cli_from_the_repository(db_url: str) -> None:
    upgraded = alembic(db_url, "upgrade", "head")
    assert upgraded.returncode == 0, upgraded.stderr
    assert await schema.current(db_url) == schema.head_revision()
    await populate(db_url)
    assert len(await stored_items(db_url)) == 4
    current = alembic(db_url, "current")
    assert current.returncode == 0, current.stderr
    assert f"{schema.head_revision()} (head)" in current.stdout
    downgraded = alembic(db_url, "downgrade", "base")
    assert downgraded.returncode == 0, downgraded.stderr
    assert await schema.current(db_url) is None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("history_store-*.whl")
    return path


def test_wheel_bundles_the_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "history_store/_migrations/env.py" in names
    assert "history_store/_migrations/script.py.mako" in names
    for revision in schema.history():
        assert any(
            name.startswith(f"history_store/_migrations/versions/{revision.revision}_")
            and name.endswith(".py")
            for name in names
        ), revision


def test_wheel_ships_the_viewer_templates_and_assets(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    viewer = REPO / "history_store" / "viewer"
    files = [*viewer.glob("templates/*.html"), *viewer.glob("static/*")]
    assert {path.suffix for path in files} == {".html", ".css", ".js", ".svg"}
    for path in files:
        assert f"history_store/viewer/{path.relative_to(viewer).as_posix()}" in names, path


INSTALLED_CHECK = """
import asyncio, sys
import history_store
from history_store import HistoryStore, schema

async def main(url):
    await schema.upgrade(url)
    async with HistoryStore(url, migrate="check") as store:
        await store.session("w").add_items([{"role": "user", "content": "from the wheel"}])
        print(history_store.__file__, schema.migrations_dir(), await schema.current(url))

asyncio.run(main(sys.argv[1]))
"""


def test_installed_wheel_upgrades_a_database(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3.*/site-packages"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    # The dependencies come from the dev venv; PYTHONPATH skips its .pth files, so the
    # editable checkout is not importable and the wheel's copy is the one used.
    deps = next((BIN.parent / "lib").glob("python3.*/site-packages"))
    url = f"sqlite+aiosqlite:///{tmp_path / 'wheel.db'}"
    ran = subprocess.run(
        [str(venv / "bin" / "python"), "-c", INSTALLED_CHECK, url],
        cwd=tmp_path,
        env={"PYTHONPATH": str(deps), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    module_file, migrations, revision = ran.stdout.split()
    assert module_file == str(site / "history_store" / "__init__.py")
    assert migrations == str(site / "history_store" / "_migrations")
    assert revision == schema.head_revision()
