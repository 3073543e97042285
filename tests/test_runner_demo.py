"""``history-store demo`` runs offline, shows attach, refusal and the stored rows, and ends
with the command that opens its kept database in the viewer."""

from __future__ import annotations

import shlex
from pathlib import Path

import httpx
import pytest

from history_store.cli import build_parser
from history_store.tools.demo import LONG_TURNS, run_demo
from history_store.viewer import create_app

HISTORY = [
    "turn  seq  role       text",
    "   1    1  user       My name is Ada and I like chess.",
    "   1    2  assistant  reply 1: saw 2 messages; last user said: My name is Ada and I like che",
    "   2    3  user       What is my name?",
    "   2    4  assistant  reply 2: saw 4 messages; last user said: What is my name?",
    "   3    5  user       And what do I like?",
    "   3    6  assistant  reply 3: saw 6 messages; last user said: And what do I like?",
]


async def test_offline_demo_output(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    lines: list[str] = []
    await run_demo(lines.append, tmp_path / "demo.db")
    text = "\n".join(lines)
    # The system prompt counts as one message: each turn sees every earlier one.
    assert "assistant: reply 3: saw 6 messages; last user said: And what do I like?" in text
    assert "refused before any request: previous_response_id was passed, but agent " in text
    assert "  without a budget, turn " in text and "fails: HTTP 400 context_length_exceeded" in text
    assert f"  with ContextBudget(512): all {LONG_TURNS} turns answered" in text
    assert lines[-9:-2] == HISTORY
    assert lines[-2:] == [
        "\nBrowse it in a web browser (read-only; Ctrl-C stops it):",
        f"  history-store serve --url sqlite:///{tmp_path / 'demo.db'}",
    ]


async def test_the_printed_command_opens_the_demo_in_the_viewer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    for _ in range(2):  # the second run replaces the first one's database
        lines: list[str] = []
        await run_demo(lines.append)
    assert lines[-9:-2] == HISTORY
    assert (tmp_path / "demo-history.db").exists()
    command = shlex.split(lines[-1])
    assert command[:2] == ["history-store", "serve"]
    args = build_parser().parse_args(command[1:])
    assert (args.command, args.host, args.port) == ("serve", "127.0.0.1", 8700)
    app = create_app(args.url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            page = (await client.get("/api/sessions/demo")).json()
    assert page["items"][0]["text"] == "My name is Ada and I like chess."
    assert page["session"]["items"] == 6
