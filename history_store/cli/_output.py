"""Every command's output: one table printer for people, one JSON printer for scripts.

``--json`` output is one JSON document on one line (non-ASCII text kept readable;
timestamps ISO 8601 in UTC; dataclasses as objects), whichever command prints it. Tables
align their columns and format every cell with :func:`cell`: ``None`` as ``-``, timestamps
in UTC to the second (also those SQLite hands back as text), one line per cell.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, TextIO

from .._json import to_json
from .._time import as_utc

# SQLite has no timestamp type: it hands timestamps back as the text they were stored as
# ("2026-01-10 09:00:00.000000", UTC), and a `sql` result carries no column types to tell
# them from other text. A cell that is exactly such a text is a timestamp.
_TIMESTAMP_TEXT = re.compile(
    r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|[+-]\d{2}:\d{2})?"
)


def _timestamp_text(text: str) -> datetime | None:
    """The timestamp ``text`` spells (no offset: UTC, as history_store writes them)."""
    match = _TIMESTAMP_TEXT.fullmatch(text)
    if match is None:
        return None
    date, time, offset = match.groups()
    try:
        return datetime.fromisoformat(
            f"{date} {time}{'+00:00' if offset in (None, 'Z') else offset}"
        )
    except ValueError:  # shaped like one, but no date (month 13)
        return None


def _when(value: datetime) -> str:
    """A timestamp for a table: UTC, to the second."""
    return as_utc(value).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def cell(value: Any, width: int | None = None) -> str:
    """One table cell on one line: newlines shown as ``\\n``, ``None`` as ``-``, a timestamp
    (or a text that is exactly one) in UTC to the second, booleans, JSON objects and lists
    as JSON; cut to ``width`` characters with ``…`` when given."""
    if value is None:
        return "-"
    if isinstance(value, str):
        stamp = _timestamp_text(value)
        if stamp is not None:
            value = stamp
    if isinstance(value, datetime):
        return _when(value)
    if isinstance(value, bool):
        return "true" if value else "false"  # as JSON and SQL spell them
    structured = isinstance(value, (dict, list))
    text = json.dumps(value, ensure_ascii=False) if structured else str(value)
    text = text.replace("\r", "").replace("\n", "\\n")
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell, two spaces apart, no trailing spaces."""
    cells = [[str(h) for h in headers]] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(line.rstrip() for line in lines)


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], *, empty: str | None = None
) -> None:
    """Print ``rows`` under ``headers`` (see :func:`table`); with no rows, ``empty`` if given."""
    if not rows and empty is not None:
        print_line(empty)
    else:
        print_line(table(headers, rows))


def print_json(document: Any, *, file: TextIO | None = None) -> None:
    """Print ``document`` as JSON (:func:`to_json`) on stdout, or on ``file``."""
    print_line(to_json(document), file=file)


def print_line(text: str, *, file: TextIO | None = None) -> None:
    stream = file if file is not None else sys.stdout
    stream.write(text + "\n")


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 item``, ``2 items`` (``nouns``: the plural when it is not ``noun + "s"``)."""
    return f"{count} {noun}" if count == 1 else f"{count} {nouns or noun + 's'}"


class StreamedRows:
    """Rows printed as they arrive, so a million-row result never sits in memory.

    As a table: the column widths come from the header and the first batch (later, wider
    cells push their line out rather than re-flowing what is already printed). As JSON: one
    document on one line, ``{"columns": [...], "rows": [...], "truncated": ...}``, written
    a row at a time.
    """

    def __init__(self, *, json_output: bool) -> None:
        self._json = json_output
        self._widths: list[int] | None = None
        self._first_json_row = True

    def add(self, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if self._json:
            self._add_json(columns, rows)
        elif columns:
            self._add_table(columns, rows)

    def _add_table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        cells = [[cell(value) for value in row] for row in rows]
        if self._widths is None:
            header = [str(name) for name in columns]
            self._widths = [
                max(len(line[i]) for line in [header, *cells]) for i in range(len(header))
            ]
            cells.insert(0, header)
        for line in cells:
            padded = "  ".join(c.ljust(w) for c, w in zip(line, self._widths, strict=True))
            sys.stdout.write(padded.rstrip() + "\n")

    def _add_json(self, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if self._first_json_row:
            sys.stdout.write(to_json({"columns": list(columns)})[:-1] + ', "rows": [')
        for row in rows:
            sys.stdout.write(("" if self._first_json_row else ", ") + to_json(list(row)))
            self._first_json_row = False

    def finish(self, columns: Sequence[str], count: int, *, truncated: bool) -> None:
        """End the output: ``(N rows)`` under a table (and why it stopped), or close the
        JSON document."""
        if self._json:
            if self._first_json_row:  # no batch came: open the document now
                sys.stdout.write(to_json({"columns": list(columns)})[:-1] + ', "rows": [')
            sys.stdout.write("], " + to_json({"truncated": truncated})[1:] + "\n")
            return
        if columns and self._widths is None:
            self._add_table(columns, [])
        stopped = ", stopped at --max-rows" if truncated else ""
        print_line(f"({plural(count, 'row')}{stopped})")
