"""``history-store export`` and ``import``: sessions as versioned JSONL."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..tools import transfer
from ..tools._import_parse import DEFAULT_MAX_LINE_LENGTH
from ..tools._import_write import ON_CONFLICT_CHOICES
from ._arguments import positive_int
from ._command import add_command
from ._output import plural, print_json, print_line
from ._progress import ProgressBar


async def _export(args: argparse.Namespace) -> int:
    with ProgressBar("exporting") as bar:
        summary = await transfer.export(
            args.output or sys.stdout,
            args.url,
            session_ids=args.sessions or None,
            progress=bar,
            force=args.force,
        )
    # The export itself may be on stdout: the summary goes to stderr.
    if args.json:
        print_json(summary, file=sys.stderr)
    else:
        done = f"exported {plural(summary.sessions, 'session')}, {plural(summary.items, 'item')}"
        print_line(done, file=sys.stderr)
    return 0


async def _import(args: argparse.Namespace) -> int:
    with ProgressBar("importing") as bar:
        source = sys.stdin if args.file == "-" else args.file
        summary = await transfer.import_(
            source,
            args.url,
            progress=bar,
            on_conflict=args.on_conflict,
            max_line_length=args.max_line_length,
        )
    if args.json:
        print_json(summary)
        return 0
    done = f"imported {plural(summary.sessions, 'session')}, {plural(summary.items, 'item')}"
    if summary.skipped:
        done += f"; skipped {plural(summary.skipped, 'conflicting session')}"
    print_line(done)
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``export`` and ``import`` to ``history-store``."""
    p = add_command(
        commands,
        common,
        "export",
        "write sessions as JSONL (to stdout)",
        _export,
        example_line="history-store export support-42 sales-1 -o backup.jsonl",
    )
    p.add_argument("sessions", nargs="*", metavar="SESSION", help="sessions (default: all)")
    p.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (mode 0600) instead of stdout"
    )
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p = add_command(
        commands,
        common,
        "import",
        "import an export file (idempotent)",
        _import,
        example_line="history-store --url postgresql://app@db/app import backup.jsonl",
    )
    p.add_argument("file", help="the JSONL file written by export ('-' reads stdin)")
    p.add_argument(
        "--on-conflict",
        choices=ON_CONFLICT_CHOICES,
        default="error",
        help="a stored session whose history is not the start of the file's: stop with an "
        "error (default), skip it, or replace it with the file's",
    )
    p.add_argument(
        "--max-line-length",
        type=positive_int,
        default=DEFAULT_MAX_LINE_LENGTH,
        metavar="N",
        help=f"longest line accepted, in characters (default {DEFAULT_MAX_LINE_LENGTH})",
    )
