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


def example(command_line: str) -> dict[str, Any]:
    """The ``ArgumentParser`` options that end a ``--help`` page with ``command_line``, one
    example of the command (``tests/test_cli_help.py`` checks that each one parses)."""
    return {
        "epilog": f"example:\n  {command_line}",
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }


def add_command(
    commands: Any,
    common: argparse.ArgumentParser,
    name: str,
    summary: str,
    handler: Handler | None,
    *,
    example_line: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """Add the command ``name`` run by ``handler`` (``None`` for a group of sub-commands):
    ``summary`` is its line in the list of commands, ``description`` (default: the summary)
    opens its ``--help``, and ``example_line`` ends it."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        parents=[common],
        help=summary,
        description=description or summary[0].upper() + summary[1:] + ".",
        **example(example_line),
    )
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser
