"""The options that bound a ``history-store sql`` query: how long, how many rows, and as
which kind of PostgreSQL role."""

from __future__ import annotations

import argparse

from ..tools.sql import DEFAULT_TIMEOUT
from ._arguments import integer, number

_MAX_TIMEOUT = 7 * 24 * 3600.0


def add_sql_limits(parser: argparse.ArgumentParser) -> None:
    """Add ``--timeout``, ``--max-rows`` and ``--unsafe-role`` to the ``sql`` command."""
    parser.add_argument(
        "--timeout",
        type=number(0, _MAX_TIMEOUT, above_low=True),
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"cancel the query on the database after SECONDS (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--max-rows",
        type=integer(1),
        default=None,
        metavar="N",
        help="print at most N rows (default: all, streamed as they are read)",
    )
    parser.add_argument(
        "--unsafe-role",
        action="store_true",
        help="PostgreSQL: run even as a superuser or a role that can write (not read-only)",
    )
