"""Rows as the viewer shows them: items grouped by turn, tool calls paired with their
outputs, a usage chart per page, search hits with the matched words marked.

Everything here returns plain values for the templates, which escape every string; the
one place that builds markup itself (:func:`highlight`) escapes the text first.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from markupsafe import Markup, escape

from .._time import as_utc
from ..backends import sqlite_fts
from ..tools.inspect import ItemRow
from .turn_data import Summary, TurnInfo

__all__ = [
    "Entry",
    "TurnBlock",
    "UsageChart",
    "turn_blocks",
    "usage_chart",
    "highlight",
    "pretty_json",
    "utc_text",
]


def utc_text(value: datetime | None) -> str:
    """A timestamp as the pages show it: UTC, to the second."""
    return "-" if value is None else as_utc(value).strftime("%Y-%m-%d %H:%M:%S")


def pretty_json(value: Any) -> str:
    """``value`` as indented JSON, non-ASCII text kept readable."""
    try:
        # Several times faster than json's indenting encoder, which is pure Python.
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode("utf-8")
    except (TypeError, orjson.JSONEncodeError):
        # Integers past 64 bits, lone surrogates: what orjson refuses, json writes.
        return json.dumps(value, indent=2, ensure_ascii=False)


@dataclass
class Entry:
    """One item on a session page.

    ``kind`` is ``message``, ``tool_call`` (any ``*_call`` item), ``tool_output`` (any
    ``*_call_output`` whose call is not on the page), ``other`` or ``corrupt`` (stored JSON
    that does not parse). A tool call carries its output in ``output`` when the output is
    on the same page.
    """

    kind: str
    seq: int
    turn: int
    role: str | None
    item_type: str
    created_at: datetime
    text: str | None
    json: str
    name: str | None = None
    call_id: str | None = None
    arguments: str | None = None
    output: Entry | None = None
    summaries: list[Summary] = field(default_factory=list)
    """Summaries whose range ends just before this item (shown above it)."""


@dataclass
class TurnBlock:
    """The entries of one turn on the page and its ``hs_turns`` row (``None``: not known)."""

    turn: int
    info: TurnInfo | None
    entries: list[Entry]


def _readable(value: Any) -> str:
    """A tool's arguments or output: JSON text indented, anything else as it is."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return pretty_json(parsed) if isinstance(parsed, (dict, list)) else value
    return pretty_json(value)


def _entry(row: ItemRow) -> Entry:
    item = row.item
    if not isinstance(item, dict):
        return Entry(
            "corrupt", row.seq, row.turn, row.role, row.item_type, row.created_at, row.text, ""
        )
    entry = Entry(
        "other",
        row.seq,
        row.turn,
        row.role,
        row.item_type,
        row.created_at,
        row.text,
        pretty_json(item),
    )
    call_id = item.get("call_id")
    entry.call_id = call_id if isinstance(call_id, str) else None
    if row.item_type == "message":
        entry.kind = "message"
    elif row.item_type.endswith("_call_output"):
        entry.kind = "tool_output"
        entry.arguments = _readable(item.get("output", row.text or ""))
    elif row.item_type.endswith("_call"):
        entry.kind = "tool_call"
        name = item.get("name")
        entry.name = name if isinstance(name, str) else row.item_type
        if "arguments" in item:
            entry.arguments = _readable(item["arguments"])
        elif "action" in item:
            entry.arguments = _readable(item["action"])
    return entry


def turn_blocks(
    rows: Sequence[ItemRow], turns: dict[int, TurnInfo], summaries: Iterable[Summary]
) -> tuple[list[TurnBlock], list[Summary]]:
    """The page's items grouped by turn, each output under its call; and the summaries
    that end after the page's last item (shown at its end)."""
    entries = [_entry(row) for row in rows]
    calls = {e.call_id: e for e in entries if e.kind == "tool_call" and e.call_id}
    shown: list[Entry] = []
    for entry in entries:
        call = calls.get(entry.call_id) if entry.kind == "tool_output" and entry.call_id else None
        if call is not None and call.output is None and call.seq < entry.seq:
            call.output = entry
        else:
            shown.append(entry)
    pending = sorted(summaries, key=lambda summary: summary.last_seq)
    for entry in shown:
        while pending and pending[0].last_seq < entry.seq:
            entry.summaries.append(pending.pop(0))
    blocks: list[TurnBlock] = []
    for entry in shown:
        if not blocks or blocks[-1].turn != entry.turn:
            blocks.append(TurnBlock(entry.turn, turns.get(entry.turn), []))
        blocks[-1].entries.append(entry)
    return blocks, pending


@dataclass(frozen=True)
class Bar:
    """One turn's column of the usage chart, in the chart's own units."""

    turn: int
    x: float
    input_y: float
    input_height: float
    output_y: float
    output_height: float
    label: str


@dataclass(frozen=True)
class UsageChart:
    """Tokens per turn for the turns on a page: input below, output stacked on top."""

    bars: list[Bar]
    width: float
    height: float
    peak: int


_BAR_WIDTH = 10.0
_BAR_GAP = 3.0
_CHART_HEIGHT = 60.0


def usage_chart(turns: dict[int, TurnInfo]) -> UsageChart | None:
    """The chart of the turns that recorded usage, or ``None`` when none did."""
    measured = [
        (info, info.input_tokens or 0, info.output_tokens or 0)
        for _, info in sorted(turns.items())
        if info.input_tokens is not None or info.output_tokens is not None
    ]
    if not measured:
        return None
    peak = max(max(tokens_in + tokens_out for _, tokens_in, tokens_out in measured), 1)
    bars = []
    for index, (info, tokens_in, tokens_out) in enumerate(measured):
        input_height = round(_CHART_HEIGHT * tokens_in / peak, 2)
        output_height = round(_CHART_HEIGHT * tokens_out / peak, 2)
        bars.append(
            Bar(
                turn=info.turn,
                x=index * (_BAR_WIDTH + _BAR_GAP),
                input_y=round(_CHART_HEIGHT - input_height, 2),
                input_height=input_height,
                output_y=round(_CHART_HEIGHT - input_height - output_height, 2),
                output_height=output_height,
                label=f"turn {info.turn}: {tokens_in} input + {tokens_out} output tokens",
            )
        )
    width = len(bars) * (_BAR_WIDTH + _BAR_GAP) - _BAR_GAP
    return UsageChart(bars=bars, width=width, height=_CHART_HEIGHT, peak=peak)


def _is_word_char(char: str) -> bool:
    # Letters, digits and combining marks: the characters sqlite_fts.words keeps together.
    return unicodedata.category(char)[0] in "LNM"


def highlight(text: str | None, query: str) -> Markup:
    """``text`` escaped, with every word that matches a word of ``query`` (whole words, case
    and accents ignored, as the search itself) inside ``<mark>``."""
    if not text:
        return Markup("")
    wanted = set(sqlite_fts.words(query))
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = start
        word = _is_word_char(text[start])
        while end < len(text) and _is_word_char(text[end]) == word:
            end += 1
        run = text[start:end]
        if word and wanted.intersection(sqlite_fts.words(run)):
            pieces.append(f"<mark>{escape(run)}</mark>")
        else:
            pieces.append(str(escape(run)))
        start = end
    return Markup("".join(pieces))
