"""``history-store chat``: stdin lines against the loopback model server, history kept; the
installed command's exit codes, errors and behaviour on a real (pseudo-)terminal."""

from __future__ import annotations

import fcntl
import io
import json
import os
import select
import signal
import socket
import subprocess
import termios
import time
from pathlib import Path

import pytest
from cli_support import PROGRAM, run_program

from history_store.cli import main
from history_store.testing import Failure, StubModelServer


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


# -- the installed command: exit codes, errors, the terminal ---------------------------------


def test_every_request_failed_exits_1_naming_the_server(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    unreachable = "http://127.0.0.1:1/v1"
    done = run_program("--url", url, "chat", "--base-url", unreachable, stdin="hi\nstill?\n")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"error: the model request to {unreachable} failed: Connection error.\n" * 2
    )


def test_a_reply_after_a_failure_exits_0(tmp_path: Path, stub: StubModelServer) -> None:
    stub.script(Failure(500, "overloaded"))
    url = f"sqlite:///{tmp_path / 'h.db'}"
    done = run_program("--url", url, "chat", "--base-url", stub.base_url, stdin="hi\nagain\n")
    assert done.returncode == 0
    assert done.stderr.startswith(f"error: the model request to {stub.base_url} failed: ")
    assert "overloaded" in done.stderr
    assert done.stdout.startswith("assistant: reply 2: ")


@pytest.mark.parametrize("argv", [["--json", "chat"], ["chat", "--json"]])
def test_json_is_a_usage_error_for_chat(argv: list[str], tmp_path: Path) -> None:
    done = run_program("--url", f"sqlite:///{tmp_path / 'h.db'}", *argv, stdin="hi\n")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines()[-1] == (
        "history-store: error: argument --json: chat has no JSON output"
        if argv[0] == "--json"
        else "history-store: error: unrecognized arguments: --json"
    )
    assert not (tmp_path / "h.db").exists()


@pytest.mark.parametrize("argv", [["--json", "demo"], ["demo", "--json"]])
def test_json_is_a_usage_error_for_demo(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .endswith(("demo has no JSON output", "unrecognized arguments: --json"))
    )


class Terminal:
    """``history-store ARGV...`` with a pseudo-terminal as its controlling terminal (stdin,
    stdout and stderr), so Ctrl-D and Ctrl-C typed into it act as they do for a person."""

    def __init__(self, *argv: str) -> None:
        self.primary, secondary = os.openpty()

        def take_the_terminal() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.process = subprocess.Popen(
            [PROGRAM, *argv],
            stdin=secondary,
            stdout=secondary,
            stderr=secondary,
            preexec_fn=take_the_terminal,
        )
        os.close(secondary)
        self.seen = b""

    def read_until(self, marker: bytes, timeout: float = 60) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.seen and time.monotonic() < deadline:
            if select.select([self.primary], [], [], 0.1)[0]:
                try:
                    chunk = os.read(self.primary, 4096)
                except OSError:  # EIO: the program ended and closed the terminal
                    break
                if not chunk:
                    break
                self.seen += chunk
        return self.seen

    def type(self, keys: bytes) -> None:
        os.write(self.primary, keys)

    def finish(self) -> tuple[int, str]:
        """The exit code and everything the terminal showed."""
        code = self.process.wait(timeout=60)
        self.read_until(b"\0", timeout=1)
        os.close(self.primary)
        return code, self.seen.decode()


def test_end_of_input_at_the_prompt_ends_its_line(tmp_path: Path, stub: StubModelServer) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    terminal = Terminal("--url", url, "chat", "--base-url", stub.base_url)
    terminal.read_until(b"you> ")
    terminal.type(b"hello\n")
    terminal.read_until(b"said: hello\r\nyou> ")
    terminal.type(b"\x04")  # Ctrl-D
    code, shown = terminal.finish()
    assert code == 0
    # The echo of what was typed, the reply, and a newline after the last prompt.
    assert shown == (
        "you> hello\r\nassistant: reply 1: saw 1 messages; last user said: hello\r\nyou> \r\n"
    )


def test_ctrl_c_at_the_prompt_exits_130(tmp_path: Path) -> None:
    terminal = Terminal("--url", f"sqlite:///{tmp_path / 'h.db'}", "chat", "--base-url", "x")
    terminal.read_until(b"you> ")
    terminal.type(b"\x03")  # Ctrl-C
    code, shown = terminal.finish()
    assert (code, shown) == (130, "you> ^C\r\ninterrupted\r\n")


def test_ctrl_c_during_a_reply_exits_130(tmp_path: Path) -> None:
    # A server that takes the request and never answers: the reply is still awaited when the
    # interrupt comes.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        base_url = f"http://127.0.0.1:{server.getsockname()[1]}/v1"
        process = subprocess.Popen(
            [PROGRAM, "--url", f"sqlite:///{tmp_path / 'h.db'}", "chat", "--base-url", base_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdin is not None
        process.stdin.write("hello\n")
        process.stdin.flush()
        connection, _ = server.accept()
        with connection:
            assert connection.recv(65536).startswith(b"POST /v1/chat/completions")
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=60)
    assert (process.returncode, out, err) == (130, "", "interrupted\n")
