"""The ``history-store`` command line: each command wraps a public library function.

Commands live in one module per group (``inspect``, ``transfer``, ``maintenance``, ``chat``,
``db``, ``migrate``, ``serve``); each exposes ``register(commands, common)``, which adds its
sub-parsers to ``commands`` with ``common`` (``--url``, ``--json``) as a parent and sets
``handler``: an async function taking the parsed arguments and returning the exit code.
Every command prints through ``_output`` (one table printer, one JSON printer).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError

from .._engine import resolve_url, sqlite_file_error
from ..errors import HistoryStoreError
from . import chat, db, inspect, maintenance, metadata, migrate, serve, transfer
from ._command import common_options, example


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = argparse.ArgumentParser(
        prog="history-store",
        description="Inspect and manage Agents SDK conversation history kept by history_store.",
        parents=[common],
        **example("history-store --url sqlite:///history.db show support-42 --last 2"),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (chat, db, migrate, inspect, metadata, transfer, maintenance, serve):
        group.register(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.url = getattr(args, "url", None)
    args.json = getattr(args, "json", False)
    if args.json and not args.json_output:
        # Given before the command name, where every command's options are accepted.
        parser.error(f"argument --json: {args.command} has no JSON output")
    usage = getattr(args, "usage_check", None)
    problem = usage(args) if usage is not None else None
    if problem is not None:
        # Options that only go together: a usage error (exit 2), as argparse's own are.
        parser.error(f"{args.command}: {problem}")
    try:
        code: int = asyncio.run(args.handler(args))
        sys.stdout.flush()  # a reader that closed the pipe is found here, not at exit
    except HistoryStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except DBAPIError as exc:
        print(f"error: {_database_error_message(args.url, exc)}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return _closed_pipe()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code


def _database_error_message(url: str | None, exc: DBAPIError) -> str:
    """A database error the library does not translate (a constraint, say): the driver's own
    message, without SQLAlchemy's statement dump and traceback; a full disk or an
    unwritable SQLite file named as the library names it."""
    try:
        precise = sqlite_file_error(resolve_url(url), exc)
    except HistoryStoreError:
        precise = None
    return (
        str(precise) if precise is not None else f"the database refused the operation: {exc.orig}"
    )


def _closed_pipe() -> int:
    """The reader of our stdout went away (``export | head``): stop quietly, as programs
    killed by SIGPIPE do (exit 141), and keep Python from complaining at exit when it
    flushes stdout again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE
