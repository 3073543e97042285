"""``history-store chat`` and ``demo``: talking to a model with the history kept.

Neither takes ``--json``: a conversation is not one JSON document, so argparse refuses it.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..tools import chat as chat_tool
from ..tools.demo import run_demo
from ._arguments import positive_int
from ._command import add_command, common_options


def _chat_usage(args: argparse.Namespace) -> str | None:
    if args.summarize and args.max_input_tokens is None:
        return "--summarize needs --max-input-tokens N (what leaves that window is summarized)"
    return None


async def _chat(args: argparse.Namespace) -> int:
    summary = await chat_tool.chat(
        args.url,
        session_id=args.session,
        model=args.model,
        base_url=args.base_url,
        instructions=args.instructions,
        max_input_tokens=args.max_input_tokens,
        summarize=args.summarize,
    )
    # Nothing got through: a script piping lines in must see that (the errors are on stderr).
    return 1 if summary.failures and not summary.replies else 0


async def _demo(args: argparse.Namespace) -> int:
    await run_demo()
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``chat`` and ``demo`` to ``history-store``."""
    url_only = common_options(json_output=False)
    p = add_command(
        commands,
        url_only,
        "chat",
        "chat with a model, history kept in a session",
        _chat,
        example_line="history-store chat --session me --base-url http://localhost:11434/v1 "
        "--model llama3.2",
    )
    p.add_argument("--session", default="chat", help="the session id (default: chat)")
    p.add_argument("--model", default=chat_tool.DEFAULT_CHAT_MODEL, help="the model name")
    p.add_argument("--base-url", help="an OpenAI-compatible API base URL (Chat Completions)")
    p.add_argument("--instructions", help="the system instructions for the model")
    p.add_argument(
        "--max-input-tokens",
        type=positive_int,
        metavar="N",
        help="keep every request within N tokens: the newest whole turns that fit are sent "
        "(all are kept)",
    )
    p.add_argument(
        "--summarize",
        action="store_true",
        help="with --max-input-tokens: the model also summarizes the turns that leave",
    )
    p.set_defaults(usage_check=_chat_usage)
    add_command(
        commands, url_only, "demo", "run the offline demo", _demo, example_line="history-store demo"
    )
