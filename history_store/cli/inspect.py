"""``history-store sessions``, ``show``, ``search``, ``sql`` and ``stats``: reading history.

Each handler calls the library function of the same name and prints its result.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..tools import context, inspect
from ..tools.search import search
from ..tools.sql import sql
from ._arguments import MAX_DAYS, MAX_INTEGER, add_budget_options, integer, number, positive_int
from ._command import add_command
from ._output import StreamedRows, cell, print_json, print_line, print_table
from ._sql_options import add_sql_limits
from .metadata import metadata_pair

_TEXT_WIDTH = 100


async def _sessions(args: argparse.Namespace) -> int:
    has_key, has_value = (None, args.meta) if isinstance(args.meta, tuple) else (args.meta, None)
    page = await inspect.sessions(
        args.url,
        prefix=args.prefix,
        metadata_key=has_key,
        metadata=dict([has_value]) if has_value is not None else None,
        idle_days=args.idle_days,
        after=args.after,
        limit=args.limit,
    )
    if args.json:
        print_json({"sessions": page.sessions, "next_after": page.next_after})
        return 0
    rows = [
        (s.session_id, s.items, s.turns, s.created_at, s.updated_at, s.metadata)
        for s in page.sessions
    ]
    headers = ["SESSION", "ITEMS", "TURNS", "CREATED", "UPDATED", "METADATA"]
    print_table(headers, rows, empty="no sessions")
    if page.next_after is not None:
        print_line(f"next page: --after {page.next_after}")
    return 0


async def _show(args: argparse.Namespace) -> int:
    if args.window or args.max_input_tokens is not None:
        return await _show_window(args)
    items = await inspect.show(args.session, args.url, turn=args.turn, last=args.last)
    turns = await inspect.turns(args.session, args.url, turn=args.turn, last=args.last)
    if args.json:
        print_json({"session_id": args.session, "items": items, "turns": turns})
        return 0
    rows = [(i.seq, i.turn, i.role, i.item_type, i.text) for i in items]
    print_table(["SEQ", "TURN", "ROLE", "TYPE", "TEXT"], rows, empty="no items")
    if turns:
        # How each turn ended and what the provider reported for it.
        print_line("")
        print_table(
            ["TURN", "STATUS", "AGENT", "MODEL", "REQUESTS", "INPUT", "OUTPUT", "TOTAL"],
            [
                (t.turn, t.status, t.agent, t.model, t.requests, t.input_tokens,
                 t.output_tokens, t.total_tokens)
                for t in turns
            ],
        )  # fmt: skip
    return 0


def _show_usage(args: argparse.Namespace) -> str | None:
    if args.window != (args.max_input_tokens is not None):
        return (
            "--window needs --max-input-tokens N (the budget: it is not stored), and the "
            "other way round"
        )
    if args.window and (args.turn is not None or args.last is not None):
        return "--window shows the next request's window; drop --turn/--last"
    return None


async def _show_window(args: argparse.Namespace) -> int:
    view = await context.window(
        args.session,
        args.url,
        max_input_tokens=args.max_input_tokens,
        reserve_output_tokens=args.reserve_output_tokens,
    )
    if args.json:
        print_json(view)
        return 0
    rows = [
        (i.seq or "", i.turn if i.turn >= 0 else "", i.role, i.item_type, i.tokens,
         cell(i.text, _TEXT_WIDTH))
        for i in view.items
    ]  # fmt: skip
    print_table(["SEQ", "TURN", "ROLE", "TYPE", "TOKENS", "TEXT"], rows, empty="no items")
    print_line("")
    if view.summary_last_seq is not None:
        print_line(f"summary: items up to seq {view.summary_last_seq}")
    print_line(
        f"window: {len(view.items)} of {view.stored_items} stored items, {view.tokens} tokens "
        f"(x{view.ratio:.2f} calibrated: {view.calibrated_tokens}) of {view.limit}, before "
        "the instructions, tools and new input"
    )
    return 0


async def _search(args: argparse.Namespace) -> int:
    hits = await search(args.text, args.url, session_id=args.session, limit=args.limit)
    if args.json:
        print_json({"query": args.text, "hits": hits})
        return 0
    rows = [(h.session_id, h.seq, h.turn, h.role, cell(h.text, _TEXT_WIDTH)) for h in hits]
    print_table(["SESSION", "SEQ", "TURN", "ROLE", "TEXT"], rows, empty="no matches")
    return 0


async def _sql(args: argparse.Namespace) -> int:
    printer = StreamedRows(json_output=args.json)
    result = await sql(
        args.query,
        args.url,
        timeout=args.timeout,
        max_rows=args.max_rows,
        on_rows=printer.add,
        unsafe_role=args.unsafe_role,
    )
    printer.finish(result.columns, result.row_count, truncated=result.truncated)
    return 0


async def _stats(args: argparse.Namespace) -> int:
    stats = await inspect.stats(args.url)
    if args.json:
        print_json(stats)
        return 0
    rows: list[tuple[str, Any]] = [
        ("sessions", stats.sessions),
        ("items", stats.items),
        ("turns", stats.turns),
        ("first activity", stats.first_activity),
        ("last activity", stats.last_activity),
        ("database bytes", stats.database_bytes),
    ]
    rows += [(f"items of type {name}", count) for name, count in stats.items_by_type.items()]
    rows += [(f"turns {status}", count) for status, count in stats.turns_by_status.items()]
    rows += [
        ("model requests", stats.requests),
        ("input tokens", stats.input_tokens),
        ("output tokens", stats.output_tokens),
        ("total tokens", stats.total_tokens),
    ]
    print_table(["STAT", "VALUE"], rows)
    return 0


def _metadata_filter(text: str) -> str | tuple[str, Any]:
    """``--meta``: a key alone, or a ``KEY=VALUE`` pair."""
    return metadata_pair(text) if "=" in text else text


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the commands that read history to ``history-store``."""
    p = add_command(
        commands,
        common,
        "sessions",
        "list sessions, oldest id first",
        _sessions,
        example_line="history-store sessions --prefix support- --meta tier=gold --limit 20",
    )
    p.add_argument("--prefix", help="only session ids starting with PREFIX")
    p.add_argument(
        "--meta",
        type=_metadata_filter,
        metavar="KEY[=VALUE]",
        help="only sessions whose metadata has KEY (with VALUE: JSON when it parses, else a "
        "string)",
    )
    p.add_argument(
        "--idle-days", type=number(0, MAX_DAYS), metavar="N", help="only sessions idle >= N days"
    )
    p.add_argument("--after", metavar="SESSION_ID", help="page cursor: ids after this one")
    p.add_argument("--limit", type=positive_int, default=50, help="page size (default 50)")
    p = add_command(
        commands,
        common,
        "show",
        "print the items of one session",
        _show,
        example_line="history-store show support-42 --last 2",
    )
    p.add_argument("session", help="the session id")
    p.add_argument("--turn", type=integer(0, MAX_INTEGER), metavar="N", help="only turn N")
    p.add_argument(
        "--last", type=integer(1, MAX_INTEGER), metavar="K", help="only the last K turns"
    )
    p.add_argument(
        "--window",
        action="store_true",
        help="what the next request would carry under a token budget, with token counts "
        "(needs --max-input-tokens)",
    )
    add_budget_options(p, required=False, help="the budget (with --window)")
    p.set_defaults(usage_check=_show_usage)
    p = add_command(
        commands,
        common,
        "search",
        "full-text search across sessions",
        _search,
        example_line='history-store search "refund delayed" --session support-42',
    )
    p.add_argument("text", help="words that must all appear (whole words, any case)")
    p.add_argument("--session", help="search only this session")
    p.add_argument(
        "--limit", type=positive_int, default=50, help="most matches to print (default 50)"
    )
    p = add_command(
        commands,
        common,
        "sql",
        "run one read-only SQL query",
        _sql,
        example_line='history-store sql "SELECT session_id, items FROM hs_session_summary '
        'ORDER BY items DESC LIMIT 5"',
    )
    p.add_argument("query", help='a SELECT statement, e.g. "SELECT * FROM hs_session_summary"')
    add_sql_limits(p)
    add_command(
        commands,
        common,
        "stats",
        "print totals for the whole database",
        _stats,
        example_line="history-store --url postgresql://app@db/app stats --json",
    )
