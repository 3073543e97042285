"""``history-store migrate-from``, ``export-to`` and ``copy``: moving history between
schemas and databases.

Each handler is a thin wrapper: parse, call the library function, print. ``docs/cli.md``
("Schema moves") documents the commands.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from ..tools.copy import copy_database
from ..tools.sdk_export import export_to_sdk
from ..tools.sdk_import import SdkImportReport, migrate_from_sdk, source_url
from ._arguments import positive_int
from ._command import add_command
from ._output import print_json, print_line
from ._progress import ProgressBar

# -- migrate-from / export-to / copy -----------------------------------------------------------


def _print_import(report: SdkImportReport) -> None:
    for entry in report.sessions:
        if entry.status == "exists":
            print_line(f"skipped {entry.session_id!r}: already in {report.destination}")
        elif entry.status == "invalid_id":
            print_line(f"skipped {entry.session_id!r}: {entry.reason}")
        elif entry.skipped_rows:
            print_line(f"{entry.session_id!r}: {entry.skipped_rows} unreadable rows left out")
    verb = "would import" if report.dry_run else "imported"
    count = report.count("would_import" if report.dry_run else "imported")
    print_line(
        f"{verb} {count} sessions, {report.items} items from {report.source} into "
        f"{report.destination}; {report.count('exists')} already there, "
        f"{report.count('invalid_id')} with unusable ids, {report.skipped_rows} rows left out"
    )


async def _migrate_from(args: argparse.Namespace) -> int:
    to = args.to if args.to is not None else args.url
    with ProgressBar("importing") as bar:
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
            progress=None if args.dry_run else bar,
        )
    if args.json:
        print_json({**asdict(report), "items": report.items})
    else:
        _print_import(report)
    return 0


async def _export_to(args: argparse.Namespace) -> int:
    with ProgressBar("exporting") as bar:
        report = await export_to_sdk(
            args.target,
            url=args.url,
            sessions_table=args.sessions_table,
            messages_table=args.messages_table,
            session_ids=args.session,
            on_existing=args.on_existing,
            batch_size=args.batch_size,
            progress=bar,
        )
    if args.json:
        print_json(asdict(report))
        return 0
    for session_id in report.existing:
        print_line(f"skipped {session_id!r}: already in the SDK tables at {report.target}")
    print_line(
        f"exported {len(report.exported)} sessions, {report.items} items from {report.source} "
        f"to {report.target}; {len(report.existing)} already there"
    )
    return 0


async def _copy(args: argparse.Namespace) -> int:
    with ProgressBar("copying") as bar:
        report = await copy_database(
            source_url(args.source),
            source_url(args.destination),
            batch_size=args.batch_size,
            migrate=args.migrate,
            progress=bar,
        )
    if args.json:
        print_json(asdict(report))
        return 0
    print_line(
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
    parser.add_argument("--batch-size", type=positive_int, default=1000, metavar="N")


def _migrate_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--migrate",
        choices=("auto", "check"),
        default=None,
        help="upgrade the destination's schema (auto, default for SQLite) or require it at "
        "head (check, default for PostgreSQL)",
    )


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``migrate-from``, ``export-to`` and ``copy`` to ``history-store``."""

    migrate = add_command(
        commands,
        common,
        "migrate-from",
        "import the Agents SDK's SQL session tables",
        _migrate_from,
        description="Import SQLiteSession / SQLAlchemySession / AdvancedSQLiteSession tables.",
        example_line="history-store migrate-from sdk conversations.db --dry-run",
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

    export = add_command(
        commands,
        common,
        "export-to",
        "write sessions into the Agents SDK's session tables",
        _export_to,
        description="Write sessions from --url into SQLiteSession/SQLAlchemySession tables.",
        example_line="history-store --url sqlite:///history.db export-to sdk back.db",
    )
    export.add_argument("kind", choices=("sdk",), help="what to write")
    export.add_argument("target", metavar="PATH_OR_URL")
    _sdk_table_options(export)

    copy = add_command(
        commands,
        common,
        "copy",
        "copy every session between databases (resumable, verified)",
        _copy,
        description="Copy every session from SRC_URL to DST_URL in batches, then verify.",
        example_line="history-store copy history.db postgresql://app@db/history",
    )
    copy.add_argument("source", metavar="SRC_URL")
    copy.add_argument("destination", metavar="DST_URL")
    copy.add_argument("--batch-size", type=positive_int, default=1000, metavar="N")
    _migrate_option(copy)
