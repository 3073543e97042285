"""``python -m bench [--quick] [--json PATH] [--pg-url URL] [--only W1,W2,...]``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from agents import set_tracing_disabled

from .config import PROFILES
from .report import print_table
from .suite import ALL_WORKLOADS, run

DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test_bench"
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--profile", choices=sorted(PROFILES), help="full, quick or tiny")
    parser.add_argument("--json", type=Path, help="where to write the JSON result")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("HISTORY_STORE_BENCH_PG_URL", DEFAULT_PG_URL),
        help="PostgreSQL database for W7; its public schema is dropped. '' skips W7",
    )
    parser.add_argument("--only", default=",".join(ALL_WORKLOADS), help="e.g. W1,W4")
    parser.add_argument("--workdir", type=Path, help="where the SQLite files go (default: temp)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    profile = args.profile or ("quick" if args.quick else "full")
    only = tuple(part.strip().upper() for part in args.only.split(",") if part.strip())
    set_tracing_disabled(True)
    directory = Path(tempfile.mkdtemp(prefix="hs-bench-", dir=args.workdir))
    try:
        result = asyncio.run(run(PROFILES[profile], directory, args.pg_url or None, only, log=_log))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    result["meta"]["profile"] = profile
    print_table(result)
    target = args.json or RESULTS_DIR / f"bench-{profile}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nJSON written to {target}")


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


if __name__ == "__main__":
    main()
