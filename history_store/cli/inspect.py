"""``history-store`` commands for reading and managing history: sessions, show, search, sql,
stats, export, import, delete, prune and chat.

Each handler calls the library function of the same name and formats its result; no SQL here.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..tools import chat as chat_module
from ..tools import inspect, maintenance, transfer
from ._output import cell, plural, table, to_json, when
from ._progress import ProgressBar

Handler = Callable[[argparse.Namespace], Awaitable[int]]

_TEXT_WIDTH = 100


def _print(text: str) -> None:
    sys.stdout.write(text + "\n")


async def _sessions(args: argparse.Namespace) -> int:
    page = await inspect.sessions(
        args.url,
        prefix=args.prefix,
        metadata_key=args.meta,
        idle_days=args.idle_days,
        after=args.after,
        limit=args.limit,
    )
    if args.json:
        _print(to_json({"sessions": page.sessions, "next_after": page.next_after}))
        return 0
    if not page.sessions:
        _print("no sessions")
        return 0
    rows = [
        (s.session_id, s.items, s.turns, when(s.created_at), when(s.updated_at), s.metadata)
        for s in page.sessions
    ]
    _print(table(["SESSION", "ITEMS", "TURNS", "CREATED", "UPDATED", "METADATA"], rows))
    if page.next_after is not None:
        _print(f"next page: --after {page.next_after}")
    return 0


async def _show(args: argparse.Namespace) -> int:
    items = await inspect.show(args.session, args.url, turn=args.turn, last=args.last)
    if args.json:
        _print(to_json({"session_id": args.session, "items": items}))
        return 0
    rows = [(i.seq, i.turn, i.role, i.item_type, i.text) for i in items]
    _print(table(["SEQ", "TURN", "ROLE", "TYPE", "TEXT"], rows) if rows else "no items")
    return 0


async def _search(args: argparse.Namespace) -> int:
    hits = await inspect.search(args.text, args.url, session_id=args.session, limit=args.limit)
    if args.json:
        _print(to_json({"query": args.text, "hits": hits}))
        return 0
    rows = [(h.session_id, h.seq, h.turn, h.role, cell(h.text, _TEXT_WIDTH)) for h in hits]
    _print(table(["SESSION", "SEQ", "TURN", "ROLE", "TEXT"], rows) if rows else "no matches")
    return 0


async def _sql(args: argparse.Namespace) -> int:
    result = await inspect.sql(args.query, args.url)
    if args.json:
        _print(to_json({"columns": result.columns, "rows": result.rows}))
        return 0
    if result.columns:
        _print(table(result.columns, result.rows))
    _print(f"({plural(len(result.rows), 'row')})")
    return 0


async def _stats(args: argparse.Namespace) -> int:
    stats = await inspect.stats(args.url)
    if args.json:
        _print(to_json(stats))
        return 0
    rows: list[tuple[str, Any]] = [
        ("sessions", stats.sessions),
        ("items", stats.items),
        ("turns", stats.turns),
        ("first activity", when(stats.first_activity)),
        ("last activity", when(stats.last_activity)),
        ("database bytes", stats.database_bytes),
    ]
    rows += [(f"items of type {name}", count) for name, count in stats.items_by_type.items()]
    _print(table(["STAT", "VALUE"], rows))
    return 0


async def _export_to_file(args: argparse.Namespace, bar: ProgressBar) -> transfer.TransferSummary:
    # Written beside the target and renamed at the end, so a failed export never leaves a
    # truncated file where a good one is expected.
    target = Path(args.output)
    partial = target.with_name(target.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as out:
            summary = await transfer.export(
                out, args.url, session_ids=args.sessions or None, progress=bar
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return summary


async def _export(args: argparse.Namespace) -> int:
    bar = ProgressBar("exporting")
    try:
        if args.output:
            summary = await _export_to_file(args, bar)
        else:
            summary = await transfer.export(
                sys.stdout, args.url, session_ids=args.sessions or None, progress=bar
            )
    finally:
        bar.close()
    done = f"exported {plural(summary.sessions, 'session')}, {plural(summary.items, 'item')}"
    print(to_json(dataclasses.asdict(summary)) if args.json else done, file=sys.stderr)
    return 0


async def _import(args: argparse.Namespace) -> int:
    bar = ProgressBar("importing")
    try:
        source = sys.stdin if args.file == "-" else args.file
        summary = await transfer.import_(source, args.url, progress=bar)
    finally:
        bar.close()
    done = f"imported {plural(summary.sessions, 'session')}, {plural(summary.items, 'item')}"
    _print(to_json(dataclasses.asdict(summary)) if args.json else done)
    return 0


def _removed(result: maintenance.PruneResult, json_output: bool) -> None:
    if json_output:
        _print(to_json(dataclasses.asdict(result)))
        return
    verb = "would delete" if result.dry_run else "deleted"
    _print(f"{verb} {plural(result.sessions, 'session')}, {plural(result.items, 'item')}")


async def _delete(args: argparse.Namespace) -> int:
    _removed(await maintenance.delete(args.sessions, args.url), args.json)
    return 0


async def _prune(args: argparse.Namespace) -> int:
    older_than = maintenance.parse_age(args.older_than) if args.older_than else None
    bar = ProgressBar("pruning")
    try:
        result = await maintenance.prune(
            args.url,
            older_than=older_than,
            keep_last_turns=args.keep_last_turns,
            dry_run=args.dry_run,
            progress=bar,
        )
    finally:
        bar.close()
    _removed(result, args.json)
    return 0


async def _chat(args: argparse.Namespace) -> int:
    await chat_module.chat(
        args.url,
        session_id=args.session,
        model=args.model,
        base_url=args.base_url,
        instructions=args.instructions,
    )
    return 0


def _add(
    commands: Any, common: argparse.ArgumentParser, name: str, summary: str, handler: Handler
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, parents=[common], help=summary, description=summary[0].upper() + summary[1:] + "."
    )
    parser.set_defaults(handler=handler)
    return parser


def _register_readers(commands: Any, common: argparse.ArgumentParser) -> None:
    p = _add(commands, common, "sessions", "list sessions, oldest id first", _sessions)
    p.add_argument("--prefix", help="only session ids starting with PREFIX")
    p.add_argument("--meta", metavar="KEY", help="only sessions whose metadata has KEY")
    p.add_argument("--idle-days", type=float, metavar="N", help="only sessions idle >= N days")
    p.add_argument("--after", metavar="SESSION_ID", help="page cursor: ids after this one")
    p.add_argument("--limit", type=int, default=50, help="page size (default 50)")
    p = _add(commands, common, "show", "print the items of one session", _show)
    p.add_argument("session", help="the session id")
    p.add_argument("--turn", type=int, metavar="N", help="only turn N")
    p.add_argument("--last", type=int, metavar="K", help="only the last K turns")
    p = _add(commands, common, "search", "full-text search across sessions", _search)
    p.add_argument("text", help="words that must all appear (whole words, any case)")
    p.add_argument("--session", help="search only this session")
    p.add_argument("--limit", type=int, default=50, help="most matches to print (default 50)")
    p = _add(commands, common, "sql", "run one read-only SQL query", _sql)
    p.add_argument("query", help='a SELECT statement, e.g. "SELECT * FROM hs_session_summary"')
    _add(commands, common, "stats", "print totals for the whole database", _stats)


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the inspection, transfer, maintenance and chat commands to ``history-store``."""
    _register_readers(commands, common)
    p = _add(commands, common, "export", "write sessions as JSONL (to stdout)", _export)
    p.add_argument("sessions", nargs="*", metavar="SESSION", help="sessions (default: all)")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p = _add(commands, common, "import", "import an export file (idempotent)", _import)
    p.add_argument("file", help="the JSONL file written by export ('-' reads stdin)")
    p = _add(commands, common, "delete", "delete sessions and all their items", _delete)
    p.add_argument("sessions", nargs="+", metavar="SESSION", help="the session ids")
    p = _add(commands, common, "prune", "delete old history, then reclaim space", _prune)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--older-than", metavar="AGE", help="delete sessions idle for AGE (30d)")
    which.add_argument("--keep-last-turns", type=int, metavar="N", help="keep N turns each")
    p.add_argument("--dry-run", action="store_true", help="only report what would be deleted")
    p = _add(commands, common, "chat", "chat with a model, history kept in a session", _chat)
    p.add_argument("--session", default="chat", help="the session id (default: chat)")
    p.add_argument("--model", default=chat_module.DEFAULT_CHAT_MODEL, help="the model name")
    p.add_argument("--base-url", help="an OpenAI-compatible API base URL (Chat Completions)")
    p.add_argument("--instructions", help="the system instructions for the model")
