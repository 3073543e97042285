"""Reading an export file: every line parsed and checked before anything is written.

A session's lines are collected into a :class:`PendingSession`; :func:`check_complete`
confirms the block is whole (as many items as its session line declares, distinct seqs), so
a truncated or damaged file never stores half a session.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TextIO

from .._items import encode_items, validate_session_id
from ..errors import HistoryStoreError, ImportFormatError
from ._export_records import parse_records

EXPORT_FORMAT = "history_store.export"
EXPORT_VERSION = 1

DEFAULT_MAX_LINE_LENGTH = 64 * 1024 * 1024
"""Characters a line of an export file may hold (``import_(max_line_length=...)``,
``--max-line-length``): a line is read whole before it is parsed, so this bounds memory."""

# The columns' ranges (BIGINT seq and last_seq, INTEGER turns and counts).
_MAX_BIGINT = 2**63 - 1
_MAX_INTEGER = 2**31 - 1


@dataclass
class PendingSession:
    """One session's lines, checked and held until the whole block has been read."""

    line: int
    session_id: str
    created_at: datetime
    updated_at: datetime
    metadata: Any
    declared_items: int
    turns: int
    last_seq: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    turn_records: list[dict[str, Any]] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)


def fail(line: int, problem: str) -> ImportFormatError:
    """The error for a bad line, saying what was and was not imported."""
    return ImportFormatError(
        f"line {line}: {problem}. Nothing of this session was imported; sessions before it "
        "were. Fix the file and import it again (import is idempotent)."
    )


def _get(document: dict[str, Any], key: str, kind: type | tuple[type, ...], line: int) -> Any:
    value = document.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise fail(line, f"{key!r} is missing or not a {getattr(kind, '__name__', kind)}")
    return value


def _number(document: dict[str, Any], key: str, line: int, low: int, high: int) -> int:
    """An integer field within ``low..high`` (the range its column can store)."""
    value: int = _get(document, key, int, line)
    if not low <= value <= high:
        raise fail(line, f"{key!r} is {value}, outside {low}..{high}")
    return value


def _timestamp(document: dict[str, Any], key: str, line: int) -> datetime:
    raw = _get(document, key, str, line)
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise fail(line, f"{key!r} is not an ISO 8601 timestamp: {raw!r}") from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def parse_session(document: Any, line: int) -> PendingSession:
    """A session line's object, checked; its items follow on the next lines."""
    if not isinstance(document, dict):
        raise fail(line, "'session' is not an object")
    try:
        session_id = validate_session_id(document.get("session_id"))
    except HistoryStoreError as exc:
        raise fail(line, str(exc)) from exc
    return PendingSession(
        line=line,
        session_id=session_id,
        created_at=_timestamp(document, "created_at", line),
        updated_at=_timestamp(document, "updated_at", line),
        metadata=document.get("metadata"),
        declared_items=_number(document, "items", line, 0, _MAX_INTEGER),
        turns=_number(document, "turns", line, 0, _MAX_INTEGER),
        last_seq=_number(document, "last_seq", line, 0, _MAX_BIGINT),
        turn_records=parse_records(document, "turn_records", session_id, fail, line),
        summaries=parse_records(document, "summaries", session_id, fail, line),
    )


def parse_item(document: dict[str, Any], session: PendingSession, line: int) -> dict[str, Any]:
    """An item line as an ``hs_items`` row, its derived columns computed as on insert."""
    row: dict[str, Any] = {
        "session_id": session.session_id,
        "seq": _number(document, "seq", line, 1, _MAX_BIGINT),
        "turn": _number(document, "turn", line, 0, _MAX_INTEGER),
        "created_at": _timestamp(document, "created_at", line),
    }
    if "item" in document:
        try:
            (encoded,) = encode_items([document["item"]])
        except HistoryStoreError as exc:
            raise fail(line, str(exc)) from exc
        row.update(
            item=encoded.item_json,
            role=encoded.role,
            item_type=encoded.item_type,
            text=encoded.text,
            tokens=encoded.tokens,
        )
    else:
        # A corrupt row is never sent, so it costs a window nothing.
        row.update(item=_get(document, "item_raw", str, line), role=None, text=None, tokens=0)
        row["item_type"] = "unknown"
    return row


def check_complete(session: PendingSession) -> None:
    """Raise unless the session holds exactly the items it declares, with distinct seqs."""
    if len(session.rows) != session.declared_items:
        raise fail(
            session.line,
            f"session {session.session_id!r} declares {session.declared_items} items but "
            f"{len(session.rows)} follow it (is the file truncated?)",
        )
    seqs = [row["seq"] for row in session.rows]
    if len(set(seqs)) != len(seqs) or any(seq < 1 for seq in seqs):
        raise fail(session.line, f"session {session.session_id!r} has duplicate or bad seqs")


def parse_header(line: int, document: Any) -> None:
    """Raise unless the first document names this format and a version this code reads."""
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise ImportFormatError(
            f"line {line}: not a history_store export (the first line must be "
            f'{{"format": "{EXPORT_FORMAT}", "version": {EXPORT_VERSION}}}); nothing was imported'
        )
    version = document.get("version")
    # 1.0 and true compare equal to 1 in Python; the format says the integer 1.
    if type(version) is not int or version != EXPORT_VERSION:
        raise ImportFormatError(
            f"export format version {version!r} is not supported: this "
            f"history_store reads version {EXPORT_VERSION}. Upgrade history_store to import "
            "this file; nothing was imported."
        )


def _lines(stream: TextIO, max_line_length: int) -> Iterator[str]:
    """The stream's lines, each read with a bound: a longer line raises
    :class:`_LineTooLong` instead of being held in memory whole."""
    while True:
        text = stream.readline(max_line_length + 1)
        if not text:
            return
        if len(text) > max_line_length:
            raise _LineTooLong
        yield text


class _LineTooLong(Exception):
    pass


def documents(stream: TextIO, max_line_length: int) -> Iterable[tuple[int, Any]]:
    """``(line number, parsed JSON)`` for every non-blank line; NaN and Infinity refused,
    and lines longer than ``max_line_length`` characters."""
    iterator = _lines(stream, max_line_length)
    number = 0
    while True:
        number += 1
        try:
            text = next(iterator)
        except StopIteration:
            return
        except _LineTooLong:
            raise fail(
                number,
                f"the line is longer than {max_line_length} characters (the limit; raise it "
                "with --max-line-length, max_line_length=)",
            ) from None
        except UnicodeDecodeError as exc:
            # Text is decoded in blocks, so the bad byte is on this line or a later one.
            raise fail(number, f"the file is not UTF-8 text here or below ({exc.reason})") from exc
        if not text.strip():
            continue
        try:
            yield number, json.loads(text, parse_constant=_reject_constant)
        except RecursionError:
            raise fail(number, "the JSON is nested too deeply to read") from None
        except ValueError as exc:
            raise fail(number, f"not valid JSON ({exc})") from exc


def _reject_constant(value: str) -> Any:
    raise ValueError(f"{value} is not valid JSON")
