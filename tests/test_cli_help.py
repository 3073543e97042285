"""Every ``history-store`` command has help text, a ``--help`` page, and a section in
docs/cli.md; every command of this module maps to a public library function."""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import run_program

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
    [
        "sessions",
        "show",
        "search",
        "sql",
        "stats",
        "meta",
        "export",
        "import",
        "delete",
        "prune",
        "chat",
    ],
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
        ("meta", "meta"),
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


def _every_parser() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """``history-store`` itself and every command and sub-command, with its command line."""
    pending = [("history-store", build_parser())]
    while pending:
        path, parser = pending.pop()
        yield path, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending += [(f"{path} {name}", sub) for name, sub in action.choices.items()]


EVERY_PARSER = dict(_every_parser())


@pytest.mark.parametrize("path", sorted(EVERY_PARSER))
def test_help_ends_with_one_example_that_parses(path: str) -> None:
    parser = EVERY_PARSER[path]
    *_, label, line = parser.format_help().rstrip("\n").splitlines()
    assert (label, line.startswith("  history-store ")) == ("example:", True), path
    example = shlex.split(line)
    assert parser.format_help().count("example:") == 1
    # The example is a command line that parses, for this very command.
    parsed = build_parser().parse_args(example[1:])
    names = [parsed.command, getattr(parsed, "db_command", None)]
    shown = " ".join(["history-store", *(name for name in names if name)])
    assert shown.startswith(path), line
    own_handler = parser.get_default("handler")
    if own_handler is not None:
        assert parsed.handler is own_handler, path


@pytest.mark.parametrize("argv", [["--help"], ["db", "stamp", "--help"]])
def test_the_installed_command_s_help_ends_with_an_example(argv: list[str]) -> None:
    done = run_program(*argv)
    assert (done.returncode, done.stderr) == (0, "")
    label, line = done.stdout.rstrip("\n").splitlines()[-2:]
    assert label == "example:"
    assert line.startswith("  history-store ")


def _sections(markdown: str) -> dict[str, str]:
    """Each heading of ``markdown`` (outside code blocks) and the text up to the next one."""
    sections: dict[str, str] = {}
    heading, body, in_code = "", [], False
    for line in markdown.splitlines():
        in_code ^= line.startswith("```")
        if line.startswith("#") and not in_code:
            sections[heading] = "\n".join(body)
            heading, body = line, []
        else:
            body.append(line)
    sections[heading] = "\n".join(body)
    return sections


@pytest.mark.parametrize("name", sorted(_commands()))
def test_each_command_section_lists_its_exit_codes(name: str) -> None:
    sections = _sections(DOC.read_text(encoding="utf-8"))
    (body,) = [
        text
        for heading, text in sections.items()
        if re.search(f"`history-store {re.escape(name)}[ `]", heading)
    ]
    assert re.search(r"^Exit codes: `0` ", body, re.MULTILINE), name
