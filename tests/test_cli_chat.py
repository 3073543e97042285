"""``history-store chat``: stdin lines against the loopback model server, history kept."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from history_store.cli import main
from history_store.testing import StubModelServer


def chat(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str, lines: str
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(lines))
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_chat_keeps_the_conversation_across_runs(
    sqlite_url: str,
    stub: StubModelServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ("--url", sqlite_url, "chat", "--base-url", stub.base_url, "--session", "ada")
    args += ("--model", "stub-model")
    assert chat(monkeypatch, capsys, *args, lines="My name is Ada.\n\nWhat is my name?\n") == (
        0,
        "assistant: reply 1: saw 1 messages; last user said: My name is Ada.\n"
        "assistant: reply 2: saw 3 messages; last user said: What is my name?\n",
        "",
    )
    # A new run of the command continues the same session; /exit stops reading.
    assert chat(monkeypatch, capsys, *args, lines="Still there?\n/exit\nnever sent\n") == (
        0,
        "assistant: reply 3: saw 5 messages; last user said: Still there?\n",
        "",
    )
    assert [request.texts() for request in stub.requests][-1] == [
        "My name is Ada.",
        "reply 1: saw 1 messages; last user said: My name is Ada.",
        "What is my name?",
        "reply 2: saw 3 messages; last user said: What is my name?",
        "Still there?",
    ]
    assert {request.body["model"] for request in stub.requests} == {"stub-model"}
    code = main(["--url", sqlite_url, "--json", "show", "ada"])
    shown = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(i["seq"], i["turn"], i["role"]) for i in shown["items"]] == [
        (1, 1, "user"),
        (2, 1, "assistant"),
        (3, 2, "user"),
        (4, 2, "assistant"),
        (5, 3, "user"),
        (6, 3, "assistant"),
    ]


def test_chat_without_a_key_or_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    url = f"sqlite:///{tmp_path / 'h.db'}"
    assert chat(monkeypatch, capsys, "--url", url, "chat", lines="hi\n") == (
        1,
        "",
        "error: no API key: set OPENAI_API_KEY, or pass --base-url for a server that needs none\n",
    )
