"""argparse types for the numeric options: a bad value is a usage error (exit 2) naming the
option and the range, never a traceback from deeper down (a negative page size, a turn
number SQLite cannot bind, a timedelta that overflows)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

MAX_INTEGER = 2**31 - 1
MAX_DAYS = 3_650_000.0  # ten thousand years, well inside what a timedelta can hold


def integer(low: int, high: int = MAX_INTEGER) -> Callable[[str], int]:
    """A type accepting whole numbers from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {low}..{high}, not {text}")
        return value

    parse.__name__ = "whole number"  # argparse names the type in its messages
    return parse


def number(low: float, high: float, *, above_low: bool = False) -> Callable[[str], float]:
    """A type accepting finite numbers from ``low`` (excluded with ``above_low``) to
    ``high``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
        too_low = value <= low if above_low else value < low
        if not math.isfinite(value) or too_low or value > high:
            bound = f"more than {low}" if above_low else f"{low}"
            raise argparse.ArgumentTypeError(f"expected {bound}..{high}, not {text}")
        return value

    parse.__name__ = "number"
    return parse


positive_int = integer(1)


def add_budget_options(parser: argparse.ArgumentParser, *, required: bool, help: str) -> None:
    """``--max-input-tokens N`` and ``--reserve-output-tokens N``: a ``ContextBudget`` given
    on the command line (it is not stored in the database)."""
    parser.add_argument(
        "--max-input-tokens", type=positive_int, required=required, metavar="N", help=help
    )
    parser.add_argument(
        "--reserve-output-tokens",
        type=integer(0, MAX_INTEGER),
        default=0,
        metavar="N",
        help="tokens the budget keeps for the reply (default 0)",
    )
