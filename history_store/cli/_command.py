"""How a command module adds its commands: a sub-parser with the shared options, an async
handler that returns the exit code, and one example for the end of its ``--help``."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[[argparse.Namespace], Awaitable[int]]


def common_options(*, json_output: bool = True) -> argparse.ArgumentParser:
    """The options every command takes: ``--url``, and ``--json`` unless the command has no
    JSON output (``chat``, ``demo``: there ``--json`` is a usage error, not ignored)."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS lets `--url` stand before or after the command name.
    common.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help="database URL (default: $HISTORY_STORE_URL, else sqlite+aiosqlite:///./history.db)",
    )
    if json_output:
        common.add_argument(
            "--json",
            action="store_true",
            default=argparse.SUPPRESS,
            help="print JSON for scripts instead of a table",
        )
    common.set_defaults(json_output=json_output)
    return common


def add_command(
    commands: Any, common: argparse.ArgumentParser, name: str, summary: str, handler: Handler
) -> argparse.ArgumentParser:
    """Add the command ``name`` (``summary`` is its help line) run by ``handler``."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, parents=[common], help=summary, description=summary[0].upper() + summary[1:] + "."
    )
    parser.set_defaults(handler=handler)
    return parser
