"""A session's turn records (``hs_turns``) and summaries (``hs_summaries``) in an export.

Both travel in the session line, as ``"turn_records"`` and ``"summaries"`` lists (left out
when empty; a file without them imports as before). The turn statuses matter most: a failed
or blocked turn's items are exported with the rest, and without its status an imported
session would send them again.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import tables

_turns = tables.turns
_summaries = tables.summaries

TURN_FIELDS = tuple(c.name for c in _turns.columns if c.name != "session_id")
SUMMARY_FIELDS = tuple(c.name for c in _summaries.columns if c.name not in ("id", "session_id"))
_TIMES = frozenset({"started_at", "finished_at", "created_at"})
_TEXTS = frozenset({"status", "agent", "model", "text"})
_REQUIRED = {
    "turn_records": frozenset({"turn", "status"}),
    "summaries": frozenset({"first_seq", "last_seq", "text", "tokens", "created_at"}),
}
_MAX_BIGINT = 2**63 - 1


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        stamp = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        return stamp.isoformat()
    return value


async def session_records(connection: AsyncConnection, session_id: str) -> dict[str, Any]:
    """The session's ``turn_records`` and ``summaries`` for its export line (empty ones left
    out)."""
    turns = await connection.execute(
        sa.select(*(_turns.c[name] for name in TURN_FIELDS))
        .where(_turns.c.session_id == session_id)
        .order_by(_turns.c.turn)
    )
    summaries = await connection.execute(
        sa.select(*(_summaries.c[name] for name in SUMMARY_FIELDS))
        .where(_summaries.c.session_id == session_id)
        .order_by(_summaries.c.last_seq, _summaries.c.id)
    )
    found = {
        "turn_records": [{k: _plain(v) for k, v in row._mapping.items()} for row in turns],
        "summaries": [{k: _plain(v) for k, v in row._mapping.items()} for row in summaries],
    }
    return {key: rows for key, rows in found.items() if rows}


def parse_records(
    document: dict[str, Any], key: str, session_id: str, fail: Any, line: int
) -> list[dict[str, Any]]:
    """The session line's ``key`` list as rows for its table, each value checked; ``fail(line,
    problem)`` makes the error."""
    given = document.get(key, [])
    fields = TURN_FIELDS if key == "turn_records" else SUMMARY_FIELDS
    if not isinstance(given, list):
        raise fail(line, f"{key!r} is not a list")
    rows = []
    for index, entry in enumerate(given):
        where = f"{key}[{index}]"
        if not isinstance(entry, dict):
            raise fail(line, f"{where} is not an object")
        missing = sorted(_REQUIRED[key] - entry.keys())
        if missing:
            raise fail(line, f"{where} lacks {', '.join(missing)}")
        row: dict[str, Any] = {"session_id": session_id}
        for name in fields:
            row[name] = _value(entry.get(name), name, where, fail, line)
        if key == "turn_records" and row["status"] not in tables.TURN_STATUSES:
            raise fail(line, f"{where}: status {row['status']!r} is not one of the turn statuses")
        rows.append(row)
    return rows


def _value(value: Any, name: str, where: str, fail: Any, line: int) -> Any:
    if value is None:
        return None
    if name in _TIMES:
        try:
            stamp = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            stamp = None
        if stamp is None:
            raise fail(line, f"{where}.{name} is not an ISO 8601 timestamp")
        return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=timezone.utc)
    if name in _TEXTS:
        if not isinstance(value, str):
            raise fail(line, f"{where}.{name} is not a string")
        return value
    if type(value) is not int or not 0 <= value <= _MAX_BIGINT:
        raise fail(line, f"{where}.{name} is not a non-negative integer")
    return value


async def write_records(
    connection: AsyncConnection,
    session_id: str,
    turn_records: list[dict[str, Any]],
    summaries: list[dict[str, Any]],
    *,
    replace: bool,
) -> None:
    """Store the file's turn records and summaries of a session: all of them in place of the
    stored ones with ``replace``; else the turns not stored yet, and the summaries that go
    past the stored ones (so summaries never overlap)."""
    if replace:
        await connection.execute(sa.delete(_turns).where(_turns.c.session_id == session_id))
        await connection.execute(sa.delete(_summaries).where(_summaries.c.session_id == session_id))
    if turn_records:
        stored = set(
            await connection.scalars(
                sa.select(_turns.c.turn).where(_turns.c.session_id == session_id)
            )
        )
        fresh = [row for row in turn_records if row["turn"] not in stored]
        if fresh:
            await connection.execute(sa.insert(_turns), fresh)
    if summaries:
        newest = await connection.scalar(
            sa.select(sa.func.coalesce(sa.func.max(_summaries.c.last_seq), 0)).where(
                _summaries.c.session_id == session_id
            )
        )
        later = [row for row in summaries if row["last_seq"] > (newest or 0)]
        if later:
            await connection.execute(sa.insert(_summaries), later)


async def copy_records(src: AsyncConnection, dst: AsyncConnection, session_id: str) -> None:
    """Give ``dst`` the source's turn records and summaries of the session, in place of its
    own (a copy's destination has no others worth keeping: its items are the source's)."""
    turns = await _rows(src, _turns, TURN_FIELDS, session_id)
    summaries = await _rows(src, _summaries, SUMMARY_FIELDS, session_id)
    await write_records(dst, session_id, turns, summaries, replace=True)


async def _rows(
    connection: AsyncConnection, table: sa.Table, fields: tuple[str, ...], session_id: str
) -> list[dict[str, Any]]:
    where = table.c.session_id == session_id
    rows = await connection.execute(sa.select(*(table.c[name] for name in fields)).where(where))
    return [
        {"session_id": session_id, **{k: _utc(v) for k, v in row._mapping.items()}} for row in rows
    ]


def _utc(value: Any) -> Any:
    # SQLite hands back naive datetimes that were written as UTC; PostgreSQL needs to know.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value
