"""``history-store delete`` and ``prune``: removing history."""

from __future__ import annotations

import argparse
from typing import Any

from ..tools import maintenance
from ._arguments import MAX_INTEGER, integer
from ._command import add_command
from ._output import plural, print_json, print_line
from ._progress import ProgressBar


def _print_removed(result: maintenance.PruneResult, json_output: bool) -> None:
    if json_output:
        print_json(result)
        return
    verb = "would delete" if result.dry_run else "deleted"
    print_line(f"{verb} {plural(result.sessions, 'session')}, {plural(result.items, 'item')}")


async def _delete(args: argparse.Namespace) -> int:
    _print_removed(await maintenance.delete(args.sessions, args.url), args.json)
    return 0


async def _prune(args: argparse.Namespace) -> int:
    older_than = maintenance.parse_age(args.older_than) if args.older_than else None
    with ProgressBar("pruning") as bar:
        result = await maintenance.prune(
            args.url,
            older_than=older_than,
            keep_last_turns=args.keep_last_turns,
            session_ids=args.session,
            dry_run=args.dry_run,
            progress=bar,
        )
    _print_removed(result, args.json)
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``delete`` and ``prune`` to ``history-store``."""
    p = add_command(
        commands,
        common,
        "delete",
        "delete sessions and all their items",
        _delete,
        example_line="history-store delete support-42 sales-1",
    )
    p.add_argument("sessions", nargs="+", metavar="SESSION", help="the session ids")
    p = add_command(
        commands,
        common,
        "prune",
        "delete old history, then reclaim space",
        _prune,
        example_line="history-store prune --older-than 90d --dry-run",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--older-than", metavar="AGE", help="delete sessions idle for AGE (30d)")
    which.add_argument(
        "--keep-last-turns", type=integer(0, MAX_INTEGER), metavar="N", help="keep N turns each"
    )
    p.add_argument(
        "--session",
        action="append",
        metavar="ID",
        help="prune only this session (repeatable; default: every session)",
    )
    p.add_argument("--dry-run", action="store_true", help="only report what would be deleted")
