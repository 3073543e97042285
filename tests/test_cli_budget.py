"""``history-store show --window``, ``compact`` and ``chat --max-input-tokens``: the token
budget from the command line, on SQLite files, against the loopback model server.

The sessions are filled through ``history_store.Runner`` against the stub, so their items,
turns and usage are stored exactly as an application stores them. The stub's summarizer
(``summarize_by_numbers``) answers a summarizing request with the message numbers it was
given, so a summary says which turns it covers.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, OpenAIChatCompletionsModel
from budget_support import message, summarize_by_numbers, summarizer_request
from cli_support import run_program
from openai import AsyncOpenAI
from sqlalchemy import text

from history_store import ContextBudget, HistoryStore, Runner
from history_store.budget.tokens import calibrated
from history_store.cli import main
from history_store.testing import StubModelServer

Capture = pytest.CaptureFixture[str]

TURNS = 30
LIMIT = 600
UNREACHABLE = "http://127.0.0.1:1/v1"


@pytest.fixture
def server() -> Iterator[StubModelServer]:
    """A stub of its own (no context limit) whose summarizing replies are short."""
    with StubModelServer(responder=summarize_by_numbers) as running:
        yield running


async def _fill(url: str, server: StubModelServer, session_id: str, turns: int) -> None:
    client = AsyncOpenAI(base_url=server.base_url, api_key="stub", max_retries=0)
    agent: Agent[Any] = Agent(
        name="assistant",
        instructions="Answer briefly.",
        model=OpenAIChatCompletionsModel("stub-model", client),
    )
    try:
        async with HistoryStore(url) as store:
            for number in range(turns):
                await Runner.run(agent, message(number), session_id=session_id, store=store)
    finally:
        await client.close()


@pytest.fixture
def long_url(sqlite_url: str, server: StubModelServer) -> str:
    """An SQLite file with session ``long``: TURNS turns of one user and one assistant item."""
    asyncio.run(_fill(sqlite_url, server, "long", TURNS))
    server.reset()
    return sqlite_url


def run(capsys: Capture, *argv: str) -> tuple[int, str, str]:
    """``main(argv)``'s exit code (argparse's usage errors exit 2 through SystemExit)."""
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: Capture, *argv: str) -> Any:
    code, out, err = run(capsys, "--json", *argv)
    assert (code, err, out.count("\n")) == (0, "", 1)  # one document on one line
    return json.loads(out)


async def _library_window(url: str, session_id: str, limit: int, reserve: int = 0) -> Any:
    async with HistoryStore(url) as store:
        budget = ContextBudget(limit, reserve_output_tokens=reserve)
        return await store.session(session_id, budget=budget).window()


def library_window(url: str, session_id: str, limit: int, reserve: int = 0) -> Any:
    return asyncio.run(_library_window(url, session_id, limit, reserve))


async def _summaries(url: str, session_id: str) -> list[tuple[Any, ...]]:
    async with HistoryStore(url) as store:
        engine = await store.engine()
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT first_seq, last_seq, model, text FROM hs_summaries "
                    "WHERE session_id = :s ORDER BY last_seq"
                ),
                {"s": session_id},
            )
            return [tuple(row) for row in rows]


def summaries(url: str, session_id: str) -> list[tuple[Any, ...]]:
    return asyncio.run(_summaries(url, session_id))


def table_rows(out: str) -> list[list[str]]:
    """The window table's rows (up to the blank line), split on whitespace."""
    lines = out.split("\n\n")[0].splitlines()
    assert lines[0].split() == ["SEQ", "TURN", "ROLE", "TYPE", "TOKENS", "TEXT"]
    return [line.split() for line in lines[1:]]


def compact_args(url: str, base_url: str, *, limit: int = LIMIT) -> list[str]:
    return [
        "--url",
        url,
        "compact",
        "long",
        "--max-input-tokens",
        str(limit),
        "--model",
        "summary-model",
        "--base-url",
        base_url,
    ]


# -- show --window ---------------------------------------------------------------------------


def test_show_window_prints_the_newest_turns_that_fit_with_their_tokens(
    long_url: str, capsys: Capture
) -> None:
    code, out, err = run(
        capsys, "--url", long_url, "show", "long", "--window", "--max-input-tokens", str(LIMIT)
    )
    assert (code, err) == (0, "")
    expected = library_window(long_url, "long", LIMIT)
    rows = table_rows(out)
    # Each row: seq, turn, role, type, tokens, then the text (cut to the table's width).
    assert [int(r[0]) for r in rows] == expected.seqs
    assert [int(r[1]) for r in rows] == expected.turns
    assert [int(r[4]) for r in rows] == expected.tokens
    assert [r[2] for r in rows] == ["user", "assistant"] * (len(rows) // 2)
    assert rows[-1][0] == str(2 * TURNS)  # the newest item is in the window
    assert int(rows[0][0]) > 1  # and the oldest is not: 30 turns do not fit 600 tokens
    assert " ".join(rows[0][5:]).startswith(f"message {expected.turns[0] - 1}: the quick")
    total = sum(expected.tokens)
    assert 0 < total <= LIMIT
    assert out.endswith(
        f"\nwindow: {len(rows)} of {2 * TURNS} stored items, {total} tokens "
        f"(x{expected.ratio:.2f} calibrated: "
        f"{calibrated(total, expected.ratio)}) of {LIMIT}, before the instructions, tools "
        "and new input\n"
    )
    assert "summary:" not in out  # none was written


def test_show_window_json_matches_the_library_window(long_url: str, capsys: Capture) -> None:
    shown = run_json(
        capsys, "--url", long_url, "show", "long", "--window", "--max-input-tokens", str(LIMIT)
    )
    expected = library_window(long_url, "long", LIMIT)
    assert set(shown) == {
        "session_id",
        "limit",
        "ratio",
        "tokens",
        "calibrated_tokens",
        "items",
        "summary_first_seq",
        "summary_last_seq",
        "summary_created_at",
        "stored_items",
    }
    assert (shown["session_id"], shown["limit"], shown["stored_items"]) == ("long", LIMIT, 60)
    assert shown["ratio"] == expected.ratio
    assert [i["seq"] for i in shown["items"]] == expected.seqs
    assert [i["turn"] for i in shown["items"]] == expected.turns
    assert [i["tokens"] for i in shown["items"]] == expected.tokens
    assert [i["role"] for i in shown["items"]] == [item["role"] for item in expected.items]
    assert {i["item_type"] for i in shown["items"]} == {"message"}
    assert shown["items"][-1]["text"].startswith(f"reply {TURNS}: ")
    assert shown["tokens"] == sum(expected.tokens)
    assert shown["calibrated_tokens"] <= shown["limit"]
    assert (shown["summary_first_seq"], shown["summary_last_seq"]) == (None, None)
    assert shown["summary_created_at"] is None


def test_show_window_reserve_output_tokens_shrinks_the_limit(
    long_url: str, capsys: Capture
) -> None:
    argv = ("--url", long_url, "show", "long", "--window", "--max-input-tokens", str(LIMIT))
    whole = run_json(capsys, *argv)
    reserved = run_json(capsys, *argv, "--reserve-output-tokens", "200")
    expected = library_window(long_url, "long", LIMIT, reserve=200)
    assert reserved["limit"] == LIMIT - 200
    assert [i["seq"] for i in reserved["items"]] == expected.seqs
    assert reserved["tokens"] == sum(expected.tokens) <= LIMIT - 200
    assert len(reserved["items"]) < len(whole["items"])


def test_show_window_shows_the_summary_first_and_marked(
    long_url: str, server: StubModelServer, capsys: Capture
) -> None:
    code, _, err = run(capsys, *compact_args(long_url, server.base_url))
    assert (code, err) == (0, "")
    stored = summaries(long_url, "long")
    assert stored
    newest = stored[-1]

    shown = run_json(
        capsys, "--url", long_url, "show", "long", "--window", "--max-input-tokens", str(LIMIT)
    )
    first = shown["items"][0]
    assert (first["seq"], first["turn"], first["role"], first["item_type"]) == (
        0,
        -1,
        "system",
        "summary",
    )
    assert first["text"] == newest[3]
    assert (shown["summary_first_seq"], shown["summary_last_seq"]) == (newest[0], newest[1])
    # Timestamps in the house format: ISO 8601, UTC.
    created = datetime.fromisoformat(shown["summary_created_at"])
    assert created.utcoffset() == timedelta(0)
    # The history after it starts right after what it covers.
    assert shown["items"][1]["seq"] == newest[1] + 1
    assert all(i["item_type"] != "summary" for i in shown["items"][1:])
    expected = library_window(long_url, "long", LIMIT)
    assert [i["tokens"] for i in shown["items"]] == expected.tokens
    assert shown["calibrated_tokens"] <= LIMIT

    code, out, err = run(
        capsys, "--url", long_url, "show", "long", "--window", "--max-input-tokens", str(LIMIT)
    )
    assert (code, err) == (0, "")
    rows = out.split("\n\n")[0].splitlines()[1:]
    # No seq or turn for the summary: its row starts blank, then role and type.
    assert rows[0].startswith(" ")
    assert rows[0].split()[:3] == ["system", "summary", str(first["tokens"])]
    assert newest[3][:40] in rows[0]
    assert f"\nsummary: items up to seq {newest[1]}\n" in out


@pytest.mark.parametrize(
    "options",
    [["--window"], ["--max-input-tokens", "600"]],
    ids=["window-without-budget", "budget-without-window"],
)
def test_show_window_and_its_budget_go_together_a_usage_error(
    long_url: str, options: list[str], capsys: Capture
) -> None:
    code, out, err = run(capsys, "--url", long_url, "show", "long", *options)
    # docs/cli.md: exit 2 is a usage error (unknown option, missing argument).
    assert (code, out) == (2, "")
    assert "--window" in err and "--max-input-tokens" in err


def test_show_window_with_turn_or_last_is_refused(long_url: str, capsys: Capture) -> None:
    code, out, err = run(
        capsys,
        "--url",
        long_url,
        "show",
        "long",
        "--window",
        "--max-input-tokens",
        "600",
        "--last",
        "1",
    )
    assert (code, out) == (2, "")
    assert "drop --turn/--last" in err


def test_show_window_reserve_at_least_the_budget_is_an_error(
    long_url: str, capsys: Capture
) -> None:
    code, out, err = run(
        capsys,
        "--url",
        long_url,
        "show",
        "long",
        "--window",
        "--max-input-tokens",
        "100",
        "--reserve-output-tokens",
        "100",
    )
    assert (code, out) == (1, "")
    assert err.startswith("error: max_input_tokens (100) must be larger than ")


def test_show_window_of_an_unknown_session(long_url: str, capsys: Capture) -> None:
    assert run(
        capsys, "--url", long_url, "show", "nope", "--window", "--max-input-tokens", "600"
    ) == (
        1,
        "",
        "error: no session 'nope' in this database; list them with: history-store sessions\n",
    )


def test_show_window_on_a_missing_database_creates_nothing(tmp_path: Path, capsys: Capture) -> None:
    missing = tmp_path / "missing.db"
    code, out, err = run(
        capsys,
        "--url",
        f"sqlite:///{missing}",
        "show",
        "s",
        "--window",
        "--max-input-tokens",
        "600",
    )
    assert (code, out) == (1, "")
    assert err.startswith(f"error: no database at sqlite+aiosqlite:///{missing}")
    assert list(tmp_path.iterdir()) == []


# -- compact ---------------------------------------------------------------------------------


def test_compact_writes_summaries_of_what_left_the_window_then_nothing(
    long_url: str, server: StubModelServer, capsys: Capture
) -> None:
    before = library_window(long_url, "long", LIMIT)
    code, out, err = run(capsys, *compact_args(long_url, server.base_url))
    assert (code, err) == (0, "")
    stored = summaries(long_url, "long")
    assert stored
    first_seq, last_seq = stored[0][0], stored[-1][1]
    count = len(stored)
    noun = "summary" if count == 1 else "summaries"
    assert out == f"wrote {count} {noun} covering seq {first_seq}..{last_seq}\n"
    # The rows follow each other without overlapping, each by the model named.
    for (_, last, _, _), (first, _, _, _) in itertools.pairwise(stored):
        assert first == last + 1
    assert {row[2] for row in stored} == {"summary-model"}
    # What they cover left the window before the compaction (the summary takes room
    # itself, so more may leave on the way); each names the message numbers it was given.
    assert first_seq < before.first_seq <= last_seq + 1
    assert stored[0][3].startswith("covered ")
    asked = [r for r in server.requests if summarizer_request(r)]
    assert len(asked) == count
    assert {r.body["model"] for r in asked} == {"summary-model"}
    after = library_window(long_url, "long", LIMIT)
    assert after.summary is not None and after.summary.last_seq == last_seq
    assert after.first_seq == last_seq + 1

    # The same via the sql command, as a user would look.
    found = run_json(
        capsys,
        "--url",
        long_url,
        "sql",
        "SELECT count(*), min(first_seq), max(last_seq) FROM hs_summaries "
        "WHERE session_id = 'long'",
    )
    assert found["rows"] == [[count, first_seq, last_seq]]

    # Again: nothing new has left the window, so nothing is asked for or written.
    server.reset()
    assert run(capsys, *compact_args(long_url, server.base_url)) == (
        0,
        "nothing has left the window: no summary written\n",
        "",
    )
    assert summaries(long_url, "long") == stored
    assert [r for r in server.requests if summarizer_request(r)] == []
    assert run_json(capsys, *compact_args(long_url, server.base_url)) == {
        "session_id": "long",
        "summaries": [],
    }


def test_compact_json_lists_the_summaries_written(
    long_url: str, server: StubModelServer, capsys: Capture
) -> None:
    written = run_json(capsys, *compact_args(long_url, server.base_url))
    stored = summaries(long_url, "long")
    assert written["session_id"] == "long"
    assert written["summaries"] and stored
    assert set(written["summaries"][0]) >= {"first_seq", "last_seq", "text", "model", "created_at"}
    assert datetime.fromisoformat(written["summaries"][0]["created_at"]).utcoffset() == timedelta(0)
    assert [
        (s["first_seq"], s["last_seq"], s["model"], s["text"]) for s in written["summaries"]
    ] == stored


def test_compact_when_everything_fits_writes_nothing(
    long_url: str, server: StubModelServer, capsys: Capture
) -> None:
    assert run(capsys, *compact_args(long_url, server.base_url, limit=100_000)) == (
        0,
        "nothing has left the window: no summary written\n",
        "",
    )
    assert summaries(long_url, "long") == []
    assert server.requests == []


def test_compact_needs_max_input_tokens(long_url: str, capsys: Capture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--url", long_url, "compact", "long", "--base-url", UNREACHABLE])
    assert exit_info.value.code == 2
    assert "--max-input-tokens" in capsys.readouterr().err.splitlines()[-1]


def test_compact_of_an_unknown_session_asks_no_model(
    long_url: str, server: StubModelServer, capsys: Capture
) -> None:
    args = compact_args(long_url, server.base_url)
    args[args.index("long")] = "nope"
    assert run(capsys, *args) == (
        1,
        "",
        "error: no session 'nope' in this database; list them with: history-store sessions\n",
    )
    assert server.requests == []


def test_compact_with_an_unreachable_model_fails_naming_it_and_writes_nothing(
    long_url: str,
) -> None:
    done = run_program(*compact_args(long_url, UNREACHABLE))
    assert (done.returncode, done.stdout) == (1, "")
    # One line, as every other error: no traceback, and the server that failed named.
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ")
    assert UNREACHABLE in done.stderr
    assert summaries(long_url, "long") == []


def test_compact_on_a_local_server_sends_no_traces(long_url: str, server: StubModelServer) -> None:
    # As chat: with --base-url (not OpenAI) the Agents SDK's tracing is off, so nothing of
    # the conversation goes to OpenAI's trace endpoint, and nothing is said about it.
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    done = run_program(*compact_args(long_url, server.base_url), env=env)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("wrote ")
    assert summaries(long_url, "long")


def test_compact_closes_its_model_client(
    long_url: str, server: StubModelServer, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    # As chat does: a client left open is closed by the garbage collector on a later event
    # loop, where it fails ("Task exception was never retrieved ... Event loop is closed").
    from history_store.tools import context

    made: list[AsyncOpenAI] = []
    original = context.client_for

    def recording(base_url: str | None, api_key: str | None) -> AsyncOpenAI:
        made.append(original(base_url, api_key))
        return made[-1]

    monkeypatch.setattr(context, "client_for", recording)
    code, out, _ = run(capsys, *compact_args(long_url, server.base_url))
    assert (code, out.startswith("wrote ")) == (0, True)
    assert len(made) == 1
    assert made[0].is_closed()


# -- chat --max-input-tokens -----------------------------------------------------------------

CHAT_CONTEXT = 1024
CHAT_LINES = 30


def chat(
    monkeypatch: pytest.MonkeyPatch, capsys: Capture, *argv: str, lines: str
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(lines))
    return run(capsys, *argv)


def chat_input() -> str:
    return "".join(message(number) + "\n" for number in range(CHAT_LINES))


@pytest.fixture
def small_context() -> Iterator[StubModelServer]:
    """A model whose context is far smaller than CHAT_LINES turns."""
    with StubModelServer(
        max_context_tokens=CHAT_CONTEXT, responder=summarize_by_numbers
    ) as running:
        yield running


def chat_args(url: str, server: StubModelServer, *extra: str) -> list[str]:
    return ["--url", url, "chat", "--session", "c", "--base-url", server.base_url, *extra]


def test_chat_without_a_budget_overflows_the_context(
    sqlite_url: str,
    small_context: StubModelServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Capture,
) -> None:
    # The premise of the next tests: this input does not fit without --max-input-tokens.
    code, out, err = chat(
        monkeypatch, capsys, *chat_args(sqlite_url, small_context), lines=chat_input()
    )
    assert code == 0  # some turns got a reply
    rejected = [r for r in small_context.requests if r.error]
    assert rejected and {r.error["error"]["code"] for r in rejected if r.error} == {
        "context_length_exceeded"
    }
    assert out.count("assistant: ") < CHAT_LINES
    assert "maximum context length" in err


def test_chat_with_max_input_tokens_replies_to_every_turn(
    sqlite_url: str,
    small_context: StubModelServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Capture,
) -> None:
    code, out, err = chat(
        monkeypatch,
        capsys,
        *chat_args(sqlite_url, small_context, "--max-input-tokens", str(CHAT_CONTEXT)),
        lines=chat_input(),
    )
    assert (code, err) == (0, "")
    replies = out.splitlines()
    assert len(replies) == CHAT_LINES
    assert replies[-1].startswith("assistant: reply ")
    assert replies[-1].endswith(f"last user said: {message(CHAT_LINES - 1)}")
    assert [r.error for r in small_context.requests if r.error] == []
    assert max(r.input_tokens for r in small_context.requests) <= CHAT_CONTEXT
    # The later requests carried only the newest turns, not the whole conversation.
    last = small_context.requests[-1]
    assert message(0) not in last.texts()
    assert message(CHAT_LINES - 2) in last.texts()
    # Without --summarize nothing is summarized, and every turn is still stored.
    assert summaries(sqlite_url, "c") == []
    assert not any(summarizer_request(r) for r in small_context.requests)
    shown = run_json(capsys, "--url", sqlite_url, "show", "c")
    assert len(shown["items"]) == 2 * CHAT_LINES


def test_chat_with_summarize_writes_summaries_and_sends_them(
    sqlite_url: str,
    small_context: StubModelServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Capture,
) -> None:
    argv = chat_args(
        sqlite_url,
        small_context,
        "--max-input-tokens",
        str(CHAT_CONTEXT),
        "--summarize",
        "--model",
        "chat-model",
    )
    code, out, err = chat(monkeypatch, capsys, *argv, lines=chat_input())
    assert (code, err) == (0, "")
    assert out.count("assistant: ") == CHAT_LINES
    assert [r.error for r in small_context.requests if r.error] == []
    stored = summaries(sqlite_url, "c")
    assert stored
    assert stored[0][3].startswith("covered ")
    # The chat's own model writes them.
    asked = [r for r in small_context.requests if summarizer_request(r)]
    assert asked and {r.body["model"] for r in asked} == {"chat-model"}
    # A later request carried the summary ahead of the newest turns.
    main_requests = [r for r in small_context.requests if not summarizer_request(r)]
    assert len(main_requests) == CHAT_LINES
    assert any(
        r.messages[0]["role"] == "system" and "covered " in r.texts()[0] for r in main_requests
    )
    # And show --window, with the same budget, shows it first.
    shown = run_json(
        capsys,
        "--url",
        sqlite_url,
        "show",
        "c",
        "--window",
        "--max-input-tokens",
        str(CHAT_CONTEXT),
    )
    assert shown["items"][0]["item_type"] == "summary"
    assert shown["summary_last_seq"] == stored[-1][1]


def test_chat_summarize_needs_max_input_tokens(tmp_path: Path, capsys: Capture) -> None:
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    code, out, err = run(capsys, "--url", url, "chat", "--summarize")
    assert (code, out) == (2, "")
    assert "--summarize needs --max-input-tokens" in err
    assert not (tmp_path / "chat.db").exists()
