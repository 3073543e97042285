"""``history-store export`` and ``import``: sessions as versioned JSONL."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..tools import transfer
from ._command import add_command
from ._output import plural, print_json, print_line
from ._progress import ProgressBar


async def _export_to_file(args: argparse.Namespace, bar: ProgressBar) -> transfer.TransferSummary:
    # Written beside the target and renamed at the end, so a failed export never leaves a
    # truncated file where a good one is expected.
    target = Path(args.output)
    partial = target.with_name(target.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as out:
            summary = await transfer.export(
                out, args.url, session_ids=args.sessions or None, progress=bar
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return summary


async def _export(args: argparse.Namespace) -> int:
    with ProgressBar("exporting") as bar:
        if args.output:
            summary = await _export_to_file(args, bar)
        else:
            summary = await transfer.export(
                sys.stdout, args.url, session_ids=args.sessions or None, progress=bar
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
        summary = await transfer.import_(source, args.url, progress=bar)
    if args.json:
        print_json(summary)
    else:
        print_line(
            f"imported {plural(summary.sessions, 'session')}, {plural(summary.items, 'item')}"
        )
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
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p = add_command(
        commands,
        common,
        "import",
        "import an export file (idempotent)",
        _import,
        example_line="history-store --url postgresql://app@db/app import backup.jsonl",
    )
    p.add_argument("file", help="the JSONL file written by export ('-' reads stdin)")
