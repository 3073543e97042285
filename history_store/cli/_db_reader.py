"""``history-store db create-reader ROLE``: a PostgreSQL role for ``sql`` and the other
read-only commands (``tools/roles.py``)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..errors import ConfigurationError
from ..tools.roles import create_reader
from ._command import example
from ._output import print_json, print_line


async def _create_reader(args: argparse.Namespace) -> int:
    password = None
    if args.password_env is not None:
        password = os.environ.get(args.password_env)
        if not password:
            raise ConfigurationError(
                f"--password-env {args.password_env}: that environment variable is not set"
            )
    made = await create_reader(args.role, args.url, password=password)
    if args.json:
        print_json(made)
        return 0
    verb = "created" if made.created else "updated"
    print_line(f"{verb} role {made.role!r}: SELECT on {', '.join(made.readable)}; nothing else")
    return 0


def add_create_reader(actions: Any, common: argparse.ArgumentParser) -> None:
    """Add ``db create-reader`` to the ``db`` group."""
    parser = actions.add_parser(
        "create-reader",
        parents=[common],
        help="create a PostgreSQL role that can only read history (for `sql`)",
        **example(
            "history-store --url postgresql://owner@db/app db create-reader history_reader "
            "--password-env READER_PASSWORD"
        ),
    )
    parser.add_argument("role", metavar="ROLE")
    parser.add_argument(
        "--password-env",
        metavar="VAR",
        help="set the role's password from the environment variable VAR",
    )
    parser.set_defaults(handler=_create_reader)
