"""Every Python sample in README.md and docs/*.md runs as written.

Each ```` ```python ```` block is written to a file and run as a script by this interpreter,
in an empty directory (so ``./history.db`` lands there), with ``OPENAI_BASE_URL`` and
``OPENAI_API_KEY`` pointing at the loopback :class:`StubModelServer`. A comment among a
block's first lines asks for set-up (the rule is in README.md, "Development"):

* ``# snippet: needs example data``: ``./history.db`` holds the CLI docs' example sessions.
* ``# snippet: needs postgres``: ``$HISTORY_STORE_URL`` is the test PostgreSQL database,
  emptied and upgraded to head.
* ``# snippet: not runnable (REASON)``: skipped, with REASON.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_support import populate

from history_store import schema
from history_store.testing import StubModelServer

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_MARKER = re.compile(r"^#\s*snippet:\s*(.*?)\s*$", re.MULTILINE)
_NEEDS = {"needs example data", "needs postgres"}
_NOT_RUNNABLE = re.compile(r"not runnable \((.+)\)")
# Markers count only among a block's first lines, before any code.
_HEADER_LINES = 5


@dataclass(frozen=True)
class Snippet:
    document: Path
    line: int
    code: str

    @property
    def name(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"

    def markers(self) -> list[str]:
        header = "\n".join(self.code.splitlines()[:_HEADER_LINES])
        return _MARKER.findall(header)


def snippets_in(document: Path) -> list[Snippet]:
    text = document.read_text(encoding="utf-8")
    return [
        Snippet(document, text.count("\n", 0, match.start()) + 1, match.group(1))
        for match in _BLOCK.finditer(text)
    ]


SNIPPETS = [snippet for document in DOCUMENTS for snippet in snippets_in(document)]


def test_the_samples_are_found() -> None:
    names = [snippet.name for snippet in SNIPPETS]
    assert sum(name.startswith("README.md:") for name in names) >= 2, names
    sample = Path("sample.md")
    text = "Text\n```python\nprint(1)\n```\n```sql\nSELECT 1\n```\n```python\n# snippet: x\n```\n"
    found = [
        Snippet(sample, text.count("\n", 0, m.start()) + 1, m.group(1))
        for m in _BLOCK.finditer(text)
    ]
    assert [(s.line, s.code, s.markers()) for s in found] == [
        (2, "print(1)\n", []),
        (8, "# snippet: x\n", ["x"]),
    ]


def _environment(stub: StubModelServer) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HISTORY_STORE_", "OPENAI_"))
    }
    env.update(
        OPENAI_BASE_URL=stub.base_url,
        OPENAI_API_KEY="stub-key",
        # Traces would go to api.openai.com, which a test never reaches.
        OPENAI_AGENTS_DISABLE_TRACING="1",
    )
    return env


def _set_up(
    snippet: Snippet, directory: Path, env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    """What the snippet's markers ask for; skips a snippet marked not runnable."""
    for marker in snippet.markers():
        reason = _NOT_RUNNABLE.fullmatch(marker)
        if reason is not None:
            pytest.skip(f"{snippet.name}: {reason.group(1)}")
        assert marker in _NEEDS, (
            f"{snippet.name}: unknown marker '# snippet: {marker}'; see README.md, Development"
        )
        if marker == "needs example data":
            asyncio.run(populate(f"sqlite+aiosqlite:///{directory / 'history.db'}", directory))
            (directory / "fixture.jsonl").unlink()
        else:
            env["HISTORY_STORE_URL"] = request.getfixturevalue("pg_url")
            asyncio.run(schema.upgrade(env["HISTORY_STORE_URL"]))


def test_markers(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    def set_up(code: str) -> None:
        _set_up(Snippet(ROOT / "README.md", 1, code), tmp_path, {}, request)

    with pytest.raises(pytest.skip.Exception, match=r"README\.md:1: a fragment"):
        set_up("# snippet: not runnable (a fragment)\nawait x\n")
    with pytest.raises(AssertionError, match="unknown marker '# snippet: needs postgress'"):
        set_up("# snippet: needs postgress\n")
    set_up("# snippet: needs example data\nprint()\n")
    assert [path.name for path in tmp_path.iterdir() if path.suffix == ".db"] == ["history.db"]


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda snippet: snippet.name)
def test_snippet_runs_as_written(
    snippet: Snippet, tmp_path: Path, stub: StubModelServer, request: pytest.FixtureRequest
) -> None:
    env = _environment(stub)
    _set_up(snippet, tmp_path, env, request)
    script = tmp_path / "snippet.py"
    script.write_text(snippet.code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{snippet.name} failed:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
