"""``history-store db ...``: apply or inspect history_store's schema revisions (Alembic)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from .. import schema
from .._engine import redact, resolve_url
from ._db_reader import add_create_reader
from ._output import print_json, print_line


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
    add_create_reader(actions, common)
