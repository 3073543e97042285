"""Schema versions: the bundled Alembic revisions, applied and checked from Python.

The public functions here back ``history-store db ...``; ``alembic`` run from a checkout uses
the same revisions through ``alembic.ini``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from . import tables
from ._engine import (
    BEGIN_OPTION,
    WRITE_OPTIONS,
    is_sqlite,
    make_engine,
    redact,
    resolve_url,
    sqlite_path,
)
from .errors import ConfigurationError, SchemaOutOfDateError

MigrateMode = Literal["auto", "check"]

# Any constant works; it only has to be the same in every process upgrading one database.
_PG_MIGRATION_LOCK_KEY = 0x6873_5F6D_6967


@dataclass(frozen=True)
class Revision:
    """One schema revision, as listed by ``history-store db history``."""

    revision: str
    down_revision: str | None
    message: str
    is_head: bool


def migrations_dir() -> Path:
    """Where the revisions are: inside the wheel, or ``migrations/`` beside the package."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "_migrations", package_dir.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise ConfigurationError(
        "history_store's migrations are missing from this installation; reinstall the package"
    )


def alembic_config() -> Config:
    """An Alembic ``Config`` for the bundled revisions (no ``alembic.ini`` needed)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


@lru_cache(maxsize=1)
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The revision this version of history_store expects."""
    head = _script().get_current_head()
    assert head is not None, "the bundled migrations have no head"
    return head


def history() -> list[Revision]:
    """Every bundled revision, newest first."""
    head = head_revision()
    return [
        Revision(
            revision=script.revision,
            down_revision=script.down_revision if isinstance(script.down_revision, str) else None,
            message=(script.doc or "").strip(),
            is_head=script.revision == head,
        )
        for script in _script().walk_revisions()
    ]


def run_with_foreign_keys_off(
    connection: Connection, migrate: Callable[[Connection], None]
) -> None:
    """Run ``migrate`` in one locked transaction, as every schema change must.

    On SQLite, foreign keys are switched off around it (a batch migration copies and drops
    tables, which would otherwise cascade-delete every item) and checked before commit; the
    transaction is IMMEDIATE so two processes never upgrade at once. On PostgreSQL an advisory
    lock does the same.
    """
    if connection.dialect.name != "sqlite":
        with connection.begin():
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK_KEY}
            )
            migrate(connection)
        return
    connection.execution_options(**{BEGIN_OPTION: "AUTOCOMMIT"})
    connection.exec_driver_sql("PRAGMA foreign_keys = OFF")
    connection.commit()
    try:
        connection.execution_options(**WRITE_OPTIONS)
        with connection.begin():
            migrate(connection)
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise ConfigurationError(f"migration left dangling rows: {broken[:5]}")
    finally:
        connection.execution_options(**{BEGIN_OPTION: "AUTOCOMMIT"})
        connection.exec_driver_sql("PRAGMA foreign_keys = ON")
        connection.commit()
        connection.execution_options(**{BEGIN_OPTION: "DEFERRED"})


def current_revision_sync(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def _with_connection(engine: AsyncEngine, operation: Callable[[Connection], None]) -> None:
    async with engine.connect() as connection:
        await connection.run_sync(run_with_foreign_keys_off, operation)


def _unknown_revision(exc: CommandError) -> ConfigurationError:
    return ConfigurationError(f"{exc}; list the revisions with: history-store db history")


def _alembic_operation(
    action: Callable[[Config], None],
) -> Callable[[Connection], None]:
    def operation(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        try:
            action(config)
        except CommandError as exc:
            raise _unknown_revision(exc) from exc

    return operation


async def _run_on_url(url: str | URL | None, action: Callable[[Config], None]) -> None:
    resolved = resolve_url(url)
    engine = make_engine(resolved)
    try:
        await _with_connection(engine, _alembic_operation(action))
    finally:
        await engine.dispose()


async def upgrade(url: str | URL | None = None, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` (default: the newest).

    Raises :class:`SchemaOutOfDateError` naming ``db stamp`` for a database that has
    history_store's tables but no recorded revision (creating them again would fail).
    """
    resolved = resolve_url(url)
    engine = make_engine(resolved)
    try:
        await _recorded_revision(engine, resolved)
        await _with_connection(engine, _alembic_operation(lambda c: command.upgrade(c, revision)))
    finally:
        await engine.dispose()


async def downgrade(url: str | URL | None, revision: str) -> None:
    """Downgrade the database at ``url`` to ``revision`` (``base`` removes every table)."""
    await _run_on_url(url, lambda config: command.downgrade(config, revision))


async def stamp(url: str | URL | None, revision: str, *, force: bool = False) -> list[str]:
    """Record ``revision`` as current without running any migration.

    Stamping says "these tables are already here", so a database that lacks a table
    ``revision`` has is refused with :class:`SchemaOutOfDateError` naming ``db upgrade``
    (stamping an empty database would leave every later command failing on a missing
    table). ``force=True`` stamps anyway. Returns the tables that were missing (``[]``
    unless forced).
    """
    resolved = resolve_url(url)
    missing = await _missing_tables(resolved, revision)
    if missing and not force:
        found = None if _no_such_file(resolved) else await current(resolved)
        command_text = f"{upgrade_command(resolved)} {revision}"
        raise SchemaOutOfDateError(
            f"refused: the database at {redact(resolved)} has no {_tables_named(missing)}, "
            f"which revision {revision!r} has; stamping records a schema that is already "
            f"there. To create it, run: {command_text}. To record the revision anyway, add "
            "--force.",
            current=found,
            expected=revision,
            command=command_text,
        )
    await _run_on_url(resolved, lambda config: command.stamp(config, revision))
    return missing


def _no_such_file(url: URL) -> bool:
    """An SQLite URL naming no file yet: a refused stamp must not create it."""
    path = sqlite_path(url) if is_sqlite(url) else None
    return path is not None and not path.exists()


def _tables_named(names: list[str]) -> str:
    return ("table " if len(names) == 1 else "tables ") + ", ".join(names)


async def _missing_tables(url: URL, revision: str) -> list[str]:
    """The tables of ``revision`` (those of ``tables.py``) the database at ``url`` lacks."""
    try:
        scripts = _script().get_revisions(revision)
    except CommandError as exc:
        raise _unknown_revision(exc) from exc
    wanted: set[str] = set()
    for script in scripts:
        if script is not None:
            wanted |= _tables_created_by(script.revision)
    if not wanted:
        return []
    if _no_such_file(url):
        return sorted(wanted)
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            present = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    finally:
        await engine.dispose()
    return sorted(wanted - present)


@cache
def _tables_created_by(revision: str) -> frozenset[str]:
    """The tables of ``tables.py`` a database has at ``revision``: the revisions up to it
    run on an empty in-memory SQLite database, whose tables are then listed. (Tables one
    database alone has, such as SQLite's full-text index, are not in ``tables.py``.)"""
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            created = set(inspect(connection).get_table_names())
    finally:
        engine.dispose()
    return frozenset(created & set(tables.metadata.tables))


async def current(url: str | URL | None = None) -> str | None:
    """The revision the database is at, or ``None`` when it has no history_store schema."""
    resolved = resolve_url(url)
    engine = make_engine(resolved)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(current_revision_sync)
    finally:
        await engine.dispose()


def upgrade_command(url: URL) -> str:
    """The shell command that upgrades the database at ``url`` to head."""
    return f"history-store --url '{redact(url)}' db upgrade"


def out_of_date(url: URL, found: str | None) -> SchemaOutOfDateError:
    expected = head_revision()
    known = {revision.revision for revision in history()}
    if found is not None and found not in known:
        command_text = f"pip install --upgrade history-store  # or: {upgrade_command(url)}"
        message = (
            f"the database at {redact(url)} is at schema revision {found!r}, newer than this "
            f"version of history_store knows (it expects {expected!r}). Upgrade history_store, "
            f"or with the newer version run: history-store --url '{redact(url)}' "
            f"db downgrade {expected}"
        )
    else:
        command_text = upgrade_command(url)
        where = "has no history_store schema" if found is None else f"is at revision {found!r}"
        message = (
            f"the database at {redact(url)} {where}; this version of history_store expects "
            f"revision {expected!r}. Run: {command_text}"
        )
    return SchemaOutOfDateError(message, current=found, expected=expected, command=command_text)


def _unrecorded(url: URL) -> SchemaOutOfDateError:
    # Tables made outside the migrations (metadata.create_all, a restored dump without
    # alembic_version): upgrading would fail on CREATE TABLE, so say how to record them.
    head = head_revision()
    command_text = f"history-store --url '{redact(url)}' db stamp {head}"
    return SchemaOutOfDateError(
        f"the database at {redact(url)} has history_store tables but no recorded schema "
        f"revision (they were not created by its migrations). If they match revision {head!r}, "
        f"run: {command_text}; otherwise copy the data into a database made by "
        "`history-store db upgrade`.",
        current=None,
        expected=head,
        command=command_text,
    )


async def _recorded_revision(engine: AsyncEngine, url: URL) -> str | None:
    """The database's revision; raises if it has our tables but no recorded revision."""
    async with engine.connect() as connection:
        # Tables first, revision second: a migration committed by another process between
        # the two reads then shows up as a recorded revision, never as unrecorded tables
        # (PostgreSQL's read committed gives each statement a fresh snapshot).
        has_tables = await connection.run_sync(lambda sync: inspect(sync).has_table("hs_sessions"))
        found = await connection.run_sync(current_revision_sync)
    if found is None and has_tables:
        raise _unrecorded(url)
    return found


async def ensure_schema(engine: AsyncEngine, url: URL, mode: MigrateMode) -> None:
    """Bring the schema to head (``auto``) or verify it is there (``check``)."""
    expected = head_revision()
    found = await _recorded_revision(engine, url)
    if found == expected:
        return
    if mode == "check" or found not in {None, *(r.revision for r in history())}:
        raise out_of_date(url, found)

    def upgrade_if_still_needed(connection: Connection) -> None:
        # Another process may have upgraded while this one waited for the lock.
        if current_revision_sync(connection) != expected:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    await _with_connection(engine, upgrade_if_still_needed)
