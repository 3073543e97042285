"""Every command's output: one table printer for people, one JSON printer for scripts.

``--json`` output is one JSON document on one line (non-ASCII text kept readable;
timestamps ISO 8601 in UTC; dataclasses as objects), whichever command prints it. Tables
align their columns, show ``None`` as ``-`` and timestamps in UTC to the second.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TextIO

from .._time import as_utc


def when(value: datetime | None) -> str:
    """A timestamp for a table: UTC, to the second."""
    return "-" if value is None else as_utc(value).strftime("%Y-%m-%d %H:%M:%S")


def cell(value: Any, width: int | None = None) -> str:
    """One table cell on one line: newlines shown as ``\\n``, ``None`` as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return when(value)
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


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)


def to_json(document: Any) -> str:
    """``document`` in the one JSON format of the CLI (see the module docstring)."""
    return json.dumps(document, ensure_ascii=False, default=_json_default)


def print_json(document: Any, *, file: TextIO | None = None) -> None:
    """Print ``document`` as JSON (:func:`to_json`) on stdout, or on ``file``."""
    print_line(to_json(document), file=file)


def print_line(text: str, *, file: TextIO | None = None) -> None:
    stream = file if file is not None else sys.stdout
    stream.write(text + "\n")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


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
