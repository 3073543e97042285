"""Every command's output: one table printer for people, one JSON printer for scripts.

``--json`` output is one JSON document on one line (non-ASCII text kept readable;
timestamps ISO 8601 in UTC; dataclasses as objects), whichever command prints it. Tables
align their columns, show ``None`` as ``-`` and timestamps in UTC to the second.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

from .._json import to_json
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


def print_json(document: Any, *, file: TextIO | None = None) -> None:
    """Print ``document`` as JSON (:func:`to_json`) on stdout, or on ``file``."""
    print_line(to_json(document), file=file)


def print_line(text: str, *, file: TextIO | None = None) -> None:
    stream = file if file is not None else sys.stdout
    stream.write(text + "\n")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
