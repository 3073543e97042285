"""``history-store meta``: a session's metadata, printed or merged; and how a ``KEY=VALUE``
argument reads (``meta`` and ``sessions --meta`` take them)."""

from __future__ import annotations

import argparse
from typing import Any

from ..tools.metadata import meta, metadata_value
from ._command import add_command
from ._output import print_json, print_table


def metadata_pair(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` as ``(key, value)`` (:func:`metadata_value`); the key ends at the
    first ``=``. An argparse type: anything else is a usage error."""
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, metadata_value(value)


async def _meta(args: argparse.Namespace) -> int:
    metadata = await meta(args.session, args.url, dict(args.pairs) or None)
    if args.json:
        print_json({"session_id": args.session, "metadata": metadata})
    else:
        print_table(["KEY", "VALUE"], list(metadata.items()), empty="no metadata")
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``meta`` to ``history-store``."""
    p = add_command(
        commands,
        common,
        "meta",
        "print a session's metadata, or merge KEY=VALUE pairs into it",
        _meta,
        example_line="history-store meta support-42 tier=gold seats=12",
    )
    p.add_argument("session", help="the session id")
    p.add_argument(
        "pairs",
        nargs="*",
        type=metadata_pair,
        metavar="KEY=VALUE",
        help="set KEY (the others are kept); VALUE is JSON when it parses (12, true, null, "
        '"12"), else a string',
    )
