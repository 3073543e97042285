"""``history-store chat``: an interactive conversation kept in a history database.

Each line read is one turn; the reply is printed as ``assistant: ...``. The history lives in
the session, so stopping and starting ``chat`` again with the same ``--session`` continues
the conversation.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from agents import Agent, OpenAIChatCompletionsModel, set_tracing_disabled
from openai import APIError, AsyncOpenAI

from ..budget.context import ContextBudget
from ..errors import ConfigurationError, ContextBudgetExceededError
from ..runner.run import Runner
from ..runner.summarizer import Summarizer
from ._open import Database, writing

__all__ = ["chat", "ChatSummary", "DEFAULT_CHAT_MODEL", "EXIT_COMMANDS"]

DEFAULT_CHAT_MODEL = "gpt-4o-mini"
EXIT_COMMANDS = frozenset({"/exit", "/quit"})


@dataclass(frozen=True)
class ChatSummary:
    """What one :func:`chat` run did: ``replies``, the turns that got a reply, and
    ``failures``, the model requests that failed (each reported on stderr)."""

    replies: int
    failures: int


def server_of(base_url: str | None) -> str:
    """The server a client made by :func:`client_for` talks to, for error messages."""
    return base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"


def client_for(base_url: str | None, api_key: str | None) -> AsyncOpenAI:
    """The ``openai`` client for ``base_url`` (default OpenAI, which needs an API key)."""
    key = api_key or os.environ.get("OPENAI_API_KEY")
    if key is None and base_url is None:
        raise ConfigurationError(
            "no API key: set OPENAI_API_KEY, or pass --base-url for a server that needs none"
        )
    return AsyncOpenAI(base_url=base_url, api_key=key or "unused", max_retries=0)


def _read_line(source: TextIO, prompt: str | None, sink: TextIO) -> str:
    """The next line of ``source``, after ``prompt`` (if any) on ``sink``; Ctrl-C while
    waiting for it raises KeyboardInterrupt.

    The read blocks the event loop (a thread blocked in ``readline`` could never be stopped),
    and asyncio's SIGINT handler only cancels the running task, which a blocking read never
    notices: the prompt would ignore Ctrl-C until Enter. So from before the prompt is shown
    to the end of the read, Ctrl-C gets Python's default handler back (signal handlers belong
    to the main thread).
    """
    previous = signal.getsignal(signal.SIGINT)
    own_handler = threading.current_thread() is threading.main_thread() and previous is not None
    if own_handler:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if prompt is not None:
            sink.write(prompt)
            sink.flush()
        return source.readline()
    finally:
        if own_handler:
            signal.signal(signal.SIGINT, previous)


def _lines(source: TextIO, sink: TextIO) -> Iterator[str]:
    """Each non-empty line of input, until end of input or an exit command. On a terminal,
    each is prompted with ``you> ``, and the prompt's line is ended when input ends or
    Ctrl-C interrupts it (so the shell's prompt, or the message, starts a line of its own)."""
    interactive = source.isatty()
    while True:
        try:
            line = _read_line(source, "you> " if interactive else None, sink)
        except KeyboardInterrupt:
            if interactive:
                sink.write("\n")
            raise
        if not line and interactive:
            sink.write("\n")
        if not line or line.strip() in EXIT_COMMANDS:
            return
        if line.strip():
            yield line.rstrip("\n")


async def chat(
    url: Database = None,
    *,
    session_id: str = "chat",
    model: str = DEFAULT_CHAT_MODEL,
    base_url: str | None = None,
    api_key: str | None = None,
    instructions: str | None = None,
    max_input_tokens: int | None = None,
    summarize: bool = False,
    input: TextIO | None = None,
    output: TextIO | None = None,
) -> ChatSummary:
    """Talk to ``model`` (Chat Completions) line by line until end of input or ``/exit``.

    The history is kept in session ``session_id`` of the database at ``url``. A failed
    request is reported on stderr (``error: the model request to URL failed: ...``, naming
    the server) and the conversation goes on. On a terminal each line is prompted with
    ``you> `` and end of input ends the prompt's line; Ctrl-C, at the prompt or during a
    reply, raises ``KeyboardInterrupt`` (the command exits 130). Tracing is disabled when
    ``base_url`` points at a non-OpenAI server. Returns how many turns got a reply and how
    many requests failed.

    ``max_input_tokens`` keeps every request within that many tokens
    (:class:`~history_store.ContextBudget`): the newest whole turns that fit are sent, all
    are kept; with ``summarize`` the same model also summarizes the turns that leave.
    """
    source = input if input is not None else sys.stdin
    sink = output if output is not None else sys.stdout
    client = client_for(base_url, api_key)
    if base_url is not None:
        set_tracing_disabled(True)
    chat_model = OpenAIChatCompletionsModel(model, client)
    agent = Agent(name="history-store chat", instructions=instructions, model=chat_model)
    server = server_of(base_url)
    budget = None
    if max_input_tokens is not None:
        summarizer = Summarizer(chat_model) if summarize else None
        budget = ContextBudget(max_input_tokens, summarizer=summarizer)
    replies = failures = 0
    try:
        async with writing(url) as store:
            session = store.session(session_id)
            for line in _lines(source, sink):
                try:
                    result = await Runner.run(agent, line, session=session, budget=budget)
                except APIError as exc:
                    print(f"error: the model request to {server} failed: {exc}", file=sys.stderr)
                    failures += 1
                    continue
                except ContextBudgetExceededError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    failures += 1
                    continue
                sink.write(f"assistant: {result.final_output}\n")
                sink.flush()
                replies += 1
    finally:
        await client.close()
    return ChatSummary(replies=replies, failures=failures)
