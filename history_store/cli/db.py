"""``history-store db ...``: apply or inspect history_store's schema revisions (Alembic)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from typing import Any

from .. import schema
from .._engine import redact, resolve_url
from ._command import add_command
from ._db_reader import add_create_reader
from ._output import print_json, print_line


async def _db_upgrade(args: argparse.Namespace) -> int:
    await schema.upgrade(args.url, args.revision)
    return await _report_revision(args, "upgraded")


async def _db_downgrade(args: argparse.Namespace) -> int:
    await schema.downgrade(args.url, args.revision)
    return await _report_revision(args, "downgraded")


async def _db_stamp(args: argparse.Namespace) -> int:
    missing = await schema.stamp(args.url, args.revision, force=args.force)
    if missing:
        print_line(
            f"warning: stamped {args.revision} (--force) although the database lacks "
            f"{', '.join(missing)}; commands will fail until the tables exist",
            file=sys.stderr,
        )
    return await _report_revision(args, "stamped")


async def _report_revision(args: argparse.Namespace, verb: str) -> int:
    found = await schema.current(args.url)
    url = redact(resolve_url(args.url))
    if args.json:
        print_json({"url": url, "action": verb, "current": found})
    else:
        print_line(f"{verb} {url}: now at revision {found or 'base (no history_store schema)'}")
    return 0


async def _db_current(args: argparse.Namespace) -> int:
    found = await schema.current(args.url)
    head = schema.head_revision()
    if args.json:
        print_json({"current": found, "head": head, "up_to_date": found == head})
    elif found is None:
        print_line(f"none (no history_store schema; run `history-store db upgrade` for {head})")
    else:
        print_line(f"{found} (head)" if found == head else f"{found} (head is {head})")
    return 0


async def _db_history(args: argparse.Namespace) -> int:
    revisions = schema.history()
    if args.json:
        print_json([asdict(revision) for revision in revisions])
        return 0
    for revision in revisions:
        head = " (head)" if revision.is_head else ""
        first_line = revision.message.splitlines()[0] if revision.message else ""
        print_line(f"{revision.down_revision or 'base'} -> {revision.revision}{head}  {first_line}")
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``db upgrade/downgrade/current/history/stamp`` to ``history-store``."""
    server = "history-store --url postgresql://app@db/app"
    db = add_command(
        commands,
        common,
        "db",
        "schema revisions: upgrade, downgrade, current, history, stamp",
        None,
        description="Apply or inspect history_store's schema revisions (Alembic).",
        example_line=f"{server} db upgrade",
    )
    actions = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = add_command(
        actions,
        common,
        "upgrade",
        "upgrade to REV (default head)",
        _db_upgrade,
        example_line=f"{server} db upgrade",
    )
    upgrade.add_argument("revision", nargs="?", default="head", metavar="REV")
    downgrade = add_command(
        actions,
        common,
        "downgrade",
        "downgrade to REV ('base' drops every hs_ table)",
        _db_downgrade,
        example_line="history-store db downgrade 0001",
    )
    downgrade.add_argument("revision", metavar="REV")
    add_command(
        actions,
        common,
        "current",
        "print the current revision",
        _db_current,
        example_line=f"{server} db current --json",
    )
    add_command(
        actions,
        common,
        "history",
        "list every revision",
        _db_history,
        example_line="history-store db history",
    )
    stamp = add_command(
        actions,
        common,
        "stamp",
        "record REV as current without running migrations",
        _db_stamp,
        example_line=f"{server} db stamp head",
    )
    stamp.add_argument("revision", metavar="REV")
    stamp.add_argument(
        "--force",
        action="store_true",
        help="stamp even though tables of REV are missing (prints a warning)",
    )
    add_create_reader(actions, common)
