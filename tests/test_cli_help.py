"""Every ``history-store`` command has help text, a ``--help`` page, and a section in
docs/cli.md; every command of this module maps to a public library function."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

import history_store
from history_store.cli import build_parser, main

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def _commands() -> dict[str, str]:
    """Each command name and its one-line help."""
    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {action.dest: action.help or "" for action in subparsers._choices_actions}


def test_every_command_has_help_and_a_section_in_the_docs() -> None:
    text = DOC.read_text(encoding="utf-8")
    headings = re.findall(r"^#+ .*?history-store ([a-z-]+)", text, re.MULTILINE)
    commands = _commands()
    assert {"sessions", "show", "search", "sql", "stats", "export", "import"} <= set(commands)
    for name, help_text in commands.items():
        assert help_text.strip(), f"{name} has no help text"
        assert name in headings, f"docs/cli.md has no section for `history-store {name}`"
    assert "## Schema moves" in text


@pytest.mark.parametrize(
    "name",
    ["sessions", "show", "search", "sql", "stats", "export", "import", "delete", "prune", "chat"],
)
def test_help_page(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert out.startswith(f"usage: history-store {name} ")
    assert _commands()[name][1:] in out  # the description repeats the help line


@pytest.mark.parametrize(
    ("command", "function"),
    [
        ("sessions", "sessions"),
        ("show", "show"),
        ("search", "search"),
        ("sql", "sql"),
        ("stats", "stats"),
        ("export", "export"),
        ("import", "import_"),
        ("delete", "delete"),
        ("prune", "prune"),
        ("chat", "chat"),
    ],
)
def test_each_command_has_a_public_library_function(command: str, function: str) -> None:
    assert function in history_store.__all__
    assert callable(getattr(history_store, function))
    assert getattr(history_store, function).__doc__
