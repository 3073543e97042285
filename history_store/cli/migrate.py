"""``history-store db ...``, ``migrate-from``, ``export-to`` and ``copy`` (schema moves).

Each handler is a thin wrapper: parse, call the library function, print. ``docs/cli.md``
("Schema moves") documents the commands.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from .. import schema
from .._engine import redact, resolve_url
from ..tools.copy import copy_database
from ..tools.sdk_export import export_to_sdk
from ..tools.sdk_import import SdkImportReport, migrate_from_sdk, source_url
from ._progress import ProgressBar


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int], None]]:
    """A ``progress`` callback (items per batch) drawing a bar on a terminal's stderr."""
    bar = ProgressBar(label)
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        bar(done, None)

    try:
        yield advance
    finally:
        bar.close()


# -- db ----------------------------------------------------------------------------------------


async def _db_upgrade(args: argparse.Namespace) -> int:
    await schema.upgrade(args.url, args.revision)
    return await _report_revision(args, "upgraded")


async def _db_downgrade(args: argparse.Namespace) -> int:
    await schema.downgrade(args.url, args.revision)
    return await _report_revision(args, "downgraded")


async def _db_stamp(args: argparse.Namespace) -> int:
    await schema.stamp(args.url, args.revision)
    return await _report_revision(args, "stamped")


async def _report_revision(args: argparse.Namespace, verb: str) -> int:
    found = await schema.current(args.url)
    url = redact(resolve_url(args.url))
    if args.json:
        _print_json({"url": url, "action": verb, "current": found})
    else:
        print(f"{verb} {url}: now at revision {found or 'base (no history_store schema)'}")
    return 0


async def _db_current(args: argparse.Namespace) -> int:
    found = await schema.current(args.url)
    head = schema.head_revision()
    if args.json:
        _print_json({"current": found, "head": head, "up_to_date": found == head})
    elif found is None:
        print(f"none (no history_store schema; run `history-store db upgrade` for {head})")
    else:
        print(f"{found} (head)" if found == head else f"{found} (head is {head})")
    return 0


async def _db_history(args: argparse.Namespace) -> int:
    revisions = schema.history()
    if args.json:
        _print_json([asdict(revision) for revision in revisions])
        return 0
    for revision in revisions:
        head = " (head)" if revision.is_head else ""
        first_line = revision.message.splitlines()[0] if revision.message else ""
        print(f"{revision.down_revision or 'base'} -> {revision.revision}{head}  {first_line}")
    return 0


def _register_db(commands: Any, common: argparse.ArgumentParser) -> None:
    db = commands.add_parser(
        "db",
        parents=[common],
        help="schema revisions: upgrade, downgrade, current, history, stamp",
        description="Apply or inspect history_store's schema revisions (Alembic).",
    )
    actions = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = actions.add_parser("upgrade", parents=[common], help="upgrade to REV (default head)")
    upgrade.add_argument("revision", nargs="?", default="head", metavar="REV")
    upgrade.set_defaults(handler=_db_upgrade)
    downgrade = actions.add_parser(
        "downgrade", parents=[common], help="downgrade to REV ('base' drops every hs_ table)"
    )
    downgrade.add_argument("revision", metavar="REV")
    downgrade.set_defaults(handler=_db_downgrade)
    current = actions.add_parser("current", parents=[common], help="print the current revision")
    current.set_defaults(handler=_db_current)
    history = actions.add_parser("history", parents=[common], help="list every revision")
    history.set_defaults(handler=_db_history)
    stamp = actions.add_parser(
        "stamp", parents=[common], help="record REV as current without running migrations"
    )
    stamp.add_argument("revision", metavar="REV")
    stamp.set_defaults(handler=_db_stamp)


# -- migrate-from / export-to / copy -----------------------------------------------------------


def _print_import(report: SdkImportReport) -> None:
    for entry in report.sessions:
        if entry.status == "exists":
            print(f"skipped {entry.session_id!r}: already in {report.destination}")
        elif entry.status == "invalid_id":
            print(f"skipped {entry.session_id!r}: {entry.reason}")
        elif entry.skipped_rows:
            print(f"{entry.session_id!r}: {entry.skipped_rows} unreadable rows left out")
    verb = "would import" if report.dry_run else "imported"
    count = report.count("would_import" if report.dry_run else "imported")
    print(
        f"{verb} {count} sessions, {report.items} items from {report.source} into "
        f"{report.destination}; {report.count('exists')} already there, "
        f"{report.count('invalid_id')} with unusable ids, {report.skipped_rows} rows left out"
    )


async def _migrate_from(args: argparse.Namespace) -> int:
    to = args.to if args.to is not None else args.url
    with _progress("importing") as progress:
        report = await migrate_from_sdk(
            args.source,
            to=to,
            sessions_table=args.sessions_table,
            messages_table=args.messages_table,
            branch=args.branch,
            order=args.order,
            session_ids=args.session,
            dry_run=args.dry_run,
            on_existing=args.on_existing,
            migrate=args.migrate,
            batch_size=args.batch_size,
            progress=None if args.dry_run else progress,
        )
    if args.json:
        _print_json({**asdict(report), "items": report.items})
    else:
        _print_import(report)
    return 0


async def _export_to(args: argparse.Namespace) -> int:
    with _progress("exporting") as progress:
        report = await export_to_sdk(
            args.target,
            url=args.url,
            sessions_table=args.sessions_table,
            messages_table=args.messages_table,
            session_ids=args.session,
            on_existing=args.on_existing,
            batch_size=args.batch_size,
            progress=progress,
        )
    if args.json:
        _print_json(asdict(report))
        return 0
    for session_id in report.existing:
        print(f"skipped {session_id!r}: already in the SDK tables at {report.target}")
    print(
        f"exported {len(report.exported)} sessions, {report.items} items from {report.source} "
        f"to {report.target}; {len(report.existing)} already there"
    )
    return 0


async def _copy(args: argparse.Namespace) -> int:
    with _progress("copying") as progress:
        report = await copy_database(
            source_url(args.source),
            source_url(args.destination),
            batch_size=args.batch_size,
            migrate=args.migrate,
            progress=progress,
        )
    if args.json:
        _print_json(asdict(report))
        return 0
    print(
        f"copied {report.items_copied} items: {report.sessions} sessions verified "
        f"({report.copied} copied, {report.resumed} resumed, {report.unchanged} already there), "
        f"{report.items_total} items in all, from {report.source} to {report.destination}"
    )
    return 0


def _sdk_table_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sessions-table", default="agent_sessions", metavar="NAME")
    parser.add_argument("--messages-table", default="agent_messages", metavar="NAME")
    parser.add_argument(
        "--session", action="append", metavar="ID", help="only this session (repeatable)"
    )
    parser.add_argument(
        "--on-existing",
        choices=("skip", "error"),
        default="skip",
        help="a session already at the destination: leave it and say so (default), or fail",
    )
    parser.add_argument("--batch-size", type=int, default=1000, metavar="N")


def _migrate_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--migrate",
        choices=("auto", "check"),
        default=None,
        help="upgrade the destination's schema (auto, default for SQLite) or require it at "
        "head (check, default for PostgreSQL)",
    )


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the schema-moving commands to the ``history-store`` parser."""
    _register_db(commands, common)

    migrate = commands.add_parser(
        "migrate-from",
        parents=[common],
        help="import the Agents SDK's SQL session tables",
        description="Import SQLiteSession / SQLAlchemySession / AdvancedSQLiteSession tables.",
    )
    migrate.add_argument("kind", choices=("sdk",), help="what the source holds")
    migrate.add_argument("source", metavar="PATH_OR_URL")
    migrate.add_argument(
        "--to", default=None, metavar="URL", help="destination (default: --url, else the source)"
    )
    migrate.add_argument(
        "--branch", default="main", help="AdvancedSQLiteSession branch to import (default main)"
    )
    migrate.add_argument("--order", choices=("auto", "id", "created_at"), default="auto")
    migrate.add_argument("--dry-run", action="store_true", help="print counts, write nothing")
    _sdk_table_options(migrate)
    _migrate_option(migrate)
    migrate.set_defaults(handler=_migrate_from)

    export = commands.add_parser(
        "export-to",
        parents=[common],
        help="write sessions into the Agents SDK's session tables",
        description="Write sessions from --url into SQLiteSession/SQLAlchemySession tables.",
    )
    export.add_argument("kind", choices=("sdk",), help="what to write")
    export.add_argument("target", metavar="PATH_OR_URL")
    _sdk_table_options(export)
    export.set_defaults(handler=_export_to)

    copy = commands.add_parser(
        "copy",
        parents=[common],
        help="copy every session between databases (resumable, verified)",
        description="Copy every session from SRC_URL to DST_URL in batches, then verify.",
    )
    copy.add_argument("source", metavar="SRC_URL")
    copy.add_argument("destination", metavar="DST_URL")
    copy.add_argument("--batch-size", type=int, default=1000, metavar="N")
    _migrate_option(copy)
    copy.set_defaults(handler=_copy)
