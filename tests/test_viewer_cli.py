"""``history-store serve`` as a real program: the installed entry point in a subprocess,
answering real HTTP on loopback, stopped by signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import viewer_support as vs

from history_store.cli import main

PROGRAM = str(Path(sys.executable).with_name("history-store"))


@pytest.fixture
def url(db_url: str, tmp_path: Path) -> str:
    asyncio.run(vs.build(db_url, tmp_path))
    return db_url


def _run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROGRAM, *argv], capture_output=True, text=True, timeout=60, check=False, env=env
    )


@contextmanager
def _serving(
    *argv: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The server started with ``argv``, and the first line it printed."""
    process = subprocess.Popen(
        [PROGRAM, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first, process.stderr.read() if process.stderr else ""
        yield process, first
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _stop(process: subprocess.Popen[str], how: signal.Signals) -> tuple[int, str, str]:
    process.send_signal(how)
    process.wait(30)
    # Read through the same buffered files as the first line was (not communicate(), which
    # reads the pipes beneath them and would miss what they already buffered).
    assert process.stdout is not None and process.stderr is not None
    return process.returncode, process.stdout.read(), process.stderr.read()


def test_serve_answers_http_and_stops_on_ctrl_c(url: str) -> None:
    with _serving("--url", url, "serve", "--port", "0") as (process, first):
        assert first.startswith("serving ") and " read-only at http://127.0.0.1:" in first
        address = first.rsplit(" at ", 1)[1].strip()
        with httpx.Client(base_url=address, timeout=10) as client:
            page = client.get("/sessions")
            data = client.get("/api/sessions/support-42").json()
            refused = client.post("/sessions")
            rebound = client.get("/sessions", headers={"host": "attacker.example"})
        assert page.status_code == 200 and 'href="/sessions/support-42"' in page.text
        assert [item["seq"] for item in data["items"]] == list(range(1, 9))
        assert refused.status_code == 405
        assert rebound.status_code == 400  # loopback only answers loopback names
        code, out, err = _stop(process, signal.SIGINT)
    assert (code, out, err) == (0, "press Ctrl-C to stop\n", "")


def test_serve_json_and_sigterm(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    asyncio.run(vs.build(database, tmp_path))
    with _serving("--url", database, "serve", "--port", "0", "--json") as (process, first):
        announced = json.loads(first)
        assert announced["read_only"] is True
        assert announced["database"] == database
        assert httpx.get(announced["url"] + "sessions", timeout=10).status_code == 200
        code, out, err = _stop(process, signal.SIGTERM)
    assert (code, out, err) == (0, "", "")


def test_another_address_needs_a_token(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    asyncio.run(vs.build(database, tmp_path))
    env = {k: v for k, v in os.environ.items() if k != "HISTORY_STORE_SERVE_TOKEN"}
    refused = _run("--url", database, "serve", "--host", "0.0.0.0", "--port", "0", env=env)
    assert refused.returncode == 1
    assert refused.stderr == (
        "error: serving on 0.0.0.0 would show the history to anyone who can reach it: pass "
        "--token TOKEN (or set $HISTORY_STORE_SERVE_TOKEN), or keep the default --host "
        "127.0.0.1\n"
    )
    token = "t0k/en&more"
    with _serving(
        "--url",
        database,
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        env={"HISTORY_STORE_SERVE_TOKEN": token},
    ) as (process, first):
        address = first.rsplit(" at ", 1)[1].strip()
        assert address.endswith("/?token=t0k%2Fen%26more")
        port = address.split(":")[2].split("/")[0]
        local = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{local}/sessions", timeout=10).status_code == 401
        with_token = httpx.get(
            f"{local}/api/sessions", headers={"authorization": f"Bearer {token}"}, timeout=10
        )
        assert with_token.status_code == 200 and len(with_token.json()["sessions"]) == 5
        opened = httpx.get(
            address.replace("0.0.0.0", "127.0.0.1"), timeout=10, follow_redirects=True
        )
        assert opened.status_code == 200 and "<h1>Sessions</h1>" in opened.text
        assert _stop(process, signal.SIGINT)[0] == 0


def test_a_missing_database_fails_before_serving(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    done = _run("--url", f"sqlite:///{missing}", "serve", "--port", "0")
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: no database at sqlite+aiosqlite:///{missing}")
    assert done.stdout == ""
    assert not missing.exists()


def test_a_busy_port_is_an_error(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    asyncio.run(vs.build(database, tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run("--url", database, "serve", "--port", str(port))
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert "pick another --port (--port 0 takes any free one)" in done.stderr


def test_without_the_viewer_extra_serve_says_what_to_install(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    asyncio.run(vs.build(database, tmp_path))
    # Jinja2 made unimportable, as in an install without the extra.
    script = (
        "import sys; sys.modules['jinja2'] = None\n"
        "from history_store.cli import main\n"
        f"sys.exit(main(['--url', {database!r}, 'serve', '--port', '0']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "error: the viewer needs the viewer extra (jinja2 is missing): "
        'pip install "history-store[viewer]"\n'
    )


def test_serve_help_names_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert out.startswith("usage: history-store serve ")
    for option in ("--host HOST", "--port PORT", "--token TOKEN", "$HISTORY_STORE_SERVE_TOKEN"):
        assert option in out
