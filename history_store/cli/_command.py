"""How a command module adds its commands: a sub-parser with the shared options and an
async handler that returns the exit code."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[[argparse.Namespace], Awaitable[int]]


def add_command(
    commands: Any, common: argparse.ArgumentParser, name: str, summary: str, handler: Handler
) -> argparse.ArgumentParser:
    """Add the command ``name`` (``summary`` is its help line) run by ``handler``."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, parents=[common], help=summary, description=summary[0].upper() + summary[1:] + "."
    )
    parser.set_defaults(handler=handler)
    return parser
