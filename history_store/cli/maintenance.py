"""``history-store delete`` and ``prune``: removing history; ``compact``: summarizing it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from openai import APIError

from ..tools import context, maintenance
from ..tools.chat import DEFAULT_CHAT_MODEL, server_of
from ._arguments import MAX_INTEGER, add_budget_options, integer
from ._command import add_command
from ._output import plural, print_json, print_line
from ._progress import ProgressBar


def _print_removed(result: maintenance.PruneResult, json_output: bool) -> None:
    if json_output:
        print_json(result)
        return
    verb = "would delete" if result.dry_run else "deleted"
    print_line(f"{verb} {plural(result.sessions, 'session')}, {plural(result.items, 'item')}")


async def _delete(args: argparse.Namespace) -> int:
    _print_removed(await maintenance.delete(args.sessions, args.url), args.json)
    return 0


async def _prune(args: argparse.Namespace) -> int:
    older_than = maintenance.parse_age(args.older_than) if args.older_than else None
    with ProgressBar("pruning") as bar:
        result = await maintenance.prune(
            args.url,
            older_than=older_than,
            keep_last_turns=args.keep_last_turns,
            session_ids=args.session,
            dry_run=args.dry_run,
            progress=bar,
        )
    _print_removed(result, args.json)
    return 0


async def _compact(args: argparse.Namespace) -> int:
    try:
        written = await context.compact(
            args.session,
            args.url,
            model=args.model,
            base_url=args.base_url,
            max_input_tokens=args.max_input_tokens,
            reserve_output_tokens=args.reserve_output_tokens,
        )
    except APIError as exc:
        message = f"the model request to {server_of(args.base_url)} failed: {exc}"
        print_line(f"error: {message}; no summary was written", file=sys.stderr)
        return 1
    if args.json:
        print_json({"session_id": args.session, "summaries": written})
    elif written:
        covered = f"seq {written[0].first_seq}..{written[-1].last_seq}"
        print_line(f"wrote {plural(len(written), 'summary', 'summaries')} covering {covered}")
    else:
        print_line("nothing has left the window: no summary written")
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``delete``, ``prune`` and ``compact`` to ``history-store``."""
    p = add_command(
        commands,
        common,
        "delete",
        "delete sessions and all their items",
        _delete,
        example_line="history-store delete support-42 sales-1",
    )
    p.add_argument("sessions", nargs="+", metavar="SESSION", help="the session ids")
    p = add_command(
        commands,
        common,
        "prune",
        "delete old history, then reclaim space",
        _prune,
        example_line="history-store prune --older-than 90d --dry-run",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--older-than", metavar="AGE", help="delete sessions idle for AGE (30d)")
    which.add_argument(
        "--keep-last-turns", type=integer(0, MAX_INTEGER), metavar="N", help="keep N turns each"
    )
    p.add_argument(
        "--session",
        action="append",
        metavar="ID",
        help="prune only this session (repeatable; default: every session)",
    )
    p.add_argument("--dry-run", action="store_true", help="only report what would be deleted")
    p = add_command(
        commands,
        common,
        "compact",
        "summarize the turns that left a session's token window",
        _compact,
        example_line="history-store compact support-42 --max-input-tokens 8000 "
        "--base-url http://localhost:11434/v1 --model llama3.2",
    )
    p.add_argument("session", help="the session id")
    add_budget_options(p, required=True, help="the budget whose window is kept")
    p.add_argument("--model", default=DEFAULT_CHAT_MODEL, help="the model that writes the summary")
    p.add_argument("--base-url", help="an OpenAI-compatible API base URL (Chat Completions)")
