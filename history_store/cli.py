"""The ``history-store`` command line: each command wraps a public library function."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="history-store")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run the offline demo")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        asyncio.run(run_demo())
    return 0


if __name__ == "__main__":
    sys.exit(main())
