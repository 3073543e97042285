"""Read-only inspection of a history database: the functions behind ``history-store``'s
``sessions``, ``show`` and ``stats`` commands (``search`` and ``sql`` have modules of their
own).

Every function here opens the database read-only (SQLite ``mode=ro`` plus
``PRAGMA query_only``; PostgreSQL ``default_transaction_read_only``), so it never creates or
changes a file, and raises :class:`DatabaseNotFoundError` for a missing SQLite file and
:class:`SchemaOutOfDateError` for a database that is not at the current schema revision.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import tables
from .._items import load_item, load_items
from .._time import as_utc
from ..errors import InvalidArgumentError, SessionNotFoundError
from ._open import Database, reading

__all__ = [
    "SessionInfo",
    "SessionPage",
    "ItemRow",
    "TurnInfo",
    "Stats",
    "sessions",
    "show",
    "turns",
    "stats",
]

_items = tables.items
_sessions = tables.sessions
_turns = tables.turns
_same_turn = (_turns.c.session_id == _items.c.session_id) & (_turns.c.turn == _items.c.turn)


@dataclass(frozen=True)
class SessionInfo:
    """One row of :func:`sessions`: a session, its metadata, and the items and turns it
    holds now (after ``prune``, fewer turns than ``hs_sessions.turn_count``, which counts
    every turn ever started so that turn numbers never repeat)."""

    session_id: str
    items: int
    turns: int
    created_at: datetime
    updated_at: datetime
    metadata: Any


@dataclass(frozen=True)
class SessionPage:
    """A page of sessions ordered by id; pass ``next_after`` as ``after`` for the next page
    (``None`` when this is the last page)."""

    sessions: list[SessionInfo]
    next_after: str | None


@dataclass(frozen=True)
class ItemRow:
    """One stored item with its derived columns; ``item`` is the parsed JSON (``None`` when
    the stored JSON is corrupt)."""

    seq: int
    turn: int
    role: str | None
    item_type: str
    text: str | None
    created_at: datetime
    item: Any
    status: str | None = None
    """The turn's status (``hs_turns``); ``None`` when it has none recorded."""


@dataclass(frozen=True)
class TurnInfo:
    """One turn's row of ``hs_turns``: how it ended and the usage reported for it (``None``
    where not known)."""

    turn: int
    status: str
    agent: str | None
    model: str | None
    requests: int | None
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class Stats:
    """Totals for a whole database: ``items`` and ``turns`` are those stored now (as in
    :class:`SessionInfo`); ``database_bytes`` is the size of the SQLite file's pages or of
    the PostgreSQL database."""

    sessions: int
    items: int
    turns: int
    first_activity: datetime | None
    last_activity: datetime | None
    database_bytes: int
    items_by_type: dict[str, int] = field(default_factory=dict)
    turns_by_status: dict[str, int] = field(default_factory=dict)
    """Turns recorded in ``hs_turns``, by status."""
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    """Usage reported by the providers, summed over every recorded turn."""


def _check_limit(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise InvalidArgumentError(f"{name} must be at least 1, not {value}")


TURNS_PRESENT = (
    sa.select(sa.func.count(sa.distinct(_items.c.turn)))
    .where(_items.c.session_id == _sessions.c.session_id, _items.c.turn > 0)
    .scalar_subquery()
    .label("turns_present")
)
"""The turns a session holds: its rows' distinct turn numbers, 0 (items before the first user
input) not being a turn. One index walk per session of the page."""


_ALLTURNS_PRESENT = (
    sa.select(_items.c.session_id, _items.c.turn).where(_items.c.turn > 0).distinct().subquery()
)


def session_info(row: sa.Row[Any]) -> SessionInfo:
    """A ``hs_sessions`` row as a :class:`SessionInfo`: ``turns`` from the row's
    ``turns_present`` column (:data:`TURNS_PRESENT`) when it has one, else the counter."""
    present = getattr(row, "turns_present", None)
    return SessionInfo(
        session_id=row.session_id,
        items=row.item_count,
        turns=present if present is not None else row.turn_count,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        metadata=row.metadata,
    )


def _has_key(dialect: str, key: str) -> sa.ColumnElement[bool]:
    column = _sessions.c.metadata
    if dialect == "sqlite":
        keys = sa.func.json_each(column).table_valued("key")
        return sa.exists(sa.select(keys.c.key).where(keys.c.key == key))
    # ``json -> key`` is SQL NULL only when the key is absent (a JSON null gives 'null').
    return column[key].isnot(None)


def _has_value(dialect: str, key: str, value: Any) -> sa.ColumnElement[bool]:
    """The metadata has ``key`` with exactly ``value``, a JSON scalar (numbers compare as
    numbers, so 1 matches 1.0; a string never matches a number)."""
    if not isinstance(value, (str, int, float, type(None))):
        raise InvalidArgumentError(
            f"a metadata filter compares a string, number, true, false or null, not {value!r:.60}"
        )
    if dialect != "sqlite":
        found = sa.cast(_sessions.c.metadata[key], JSONB)
        return found == sa.cast(sa.literal(json.dumps(value)), JSONB)
    each = sa.func.json_each(_sessions.c.metadata).table_valued("key", "value", "type")
    if value is None or isinstance(value, bool):
        matches = each.c.type == json.dumps(value)  # 'null', 'true', 'false'
    elif isinstance(value, str):
        matches = (each.c.type == "text") & (each.c.value == value)
    else:
        matches = each.c.type.in_(("integer", "real")) & (each.c.value == value)
    return sa.exists(sa.select(each.c.key).where(each.c.key == key, matches))


async def sessions(
    url: Database = None,
    *,
    prefix: str | None = None,
    metadata_key: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    idle_days: float | None = None,
    after: str | None = None,
    limit: int = 50,
) -> SessionPage:
    """Sessions ordered by id, one page at a time.

    Args:
        prefix: only ids starting with this string (case-sensitive).
        metadata_key: only sessions whose metadata object has this key.
        metadata: only sessions whose metadata has each of these keys with exactly this
            value (a string, number, ``True``/``False`` or ``None``).
        idle_days: only sessions with no activity for at least this many days.
        after: the cursor: only ids greater than this (a previous page's ``next_after``).
        limit: the page size (at least 1).
    """
    async with reading(url) as engine, engine.connect() as connection:
        return await session_page(
            connection,
            prefix=prefix,
            metadata_key=metadata_key,
            metadata=metadata,
            idle_days=idle_days,
            after=after,
            limit=limit,
        )


async def session_page(
    connection: AsyncConnection,
    *,
    prefix: str | None = None,
    metadata_key: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    idle_days: float | None = None,
    after: str | None = None,
    limit: int = 50,
) -> SessionPage:
    """:func:`sessions` on a connection the caller holds open (the viewer keeps one engine).

    The page is read by keyset on the primary key: ``session_id > after ORDER BY session_id
    LIMIT limit + 1``, so a page costs the same at the start and the end of 100k sessions.
    """
    _check_limit("limit", limit)
    statement = (
        sa.select(_sessions, TURNS_PRESENT).order_by(_sessions.c.session_id).limit(limit + 1)
    )
    if prefix:
        # >= lets the primary key index seek; substr makes the match exact and
        # case-sensitive (LIKE is neither on SQLite).
        statement = statement.where(
            _sessions.c.session_id >= prefix,
            sa.func.substr(_sessions.c.session_id, 1, len(prefix)) == prefix,
        )
    if metadata_key is not None:
        statement = statement.where(_has_key(connection.dialect.name, metadata_key))
    for key, value in (metadata or {}).items():
        statement = statement.where(_has_value(connection.dialect.name, key, value))
    if idle_days is not None:
        cutoff = datetime.now(timezone.utc) - timedelta(days=idle_days)
        statement = statement.where(_sessions.c.updated_at <= cutoff)
    if after is not None:
        statement = statement.where(_sessions.c.session_id > after)
    rows = (await connection.execute(statement)).all()
    page = [session_info(row) for row in rows[:limit]]
    next_after = page[-1].session_id if len(rows) > limit else None
    return SessionPage(sessions=page, next_after=next_after)


async def require_session(connection: AsyncConnection, session_id: str) -> sa.Row[Any]:
    """The session's ``hs_sessions`` row; :class:`SessionNotFoundError` if there is none."""
    row = (
        await connection.execute(sa.select(_sessions).where(_sessions.c.session_id == session_id))
    ).first()
    if row is None:
        raise SessionNotFoundError(
            f"no session {session_id!r} in this database; list them with: history-store sessions"
        )
    return row


async def show(
    session_id: str,
    url: Database = None,
    *,
    turn: int | None = None,
    last: int | None = None,
) -> list[ItemRow]:
    """The items of a session in order; ``turn`` keeps one turn, ``last`` the last N turns.

    Raises :class:`SessionNotFoundError` when the session does not exist.
    """
    _check_limit("last", last)
    async with reading(url) as engine, engine.connect() as connection:
        session = await require_session(connection, session_id)
        statement = (
            sa.select(_items, _turns.c.status)
            .select_from(_items.outerjoin(_turns, _same_turn))
            .where(_items.c.session_id == session_id)
        )
        if turn is not None:
            statement = statement.where(_items.c.turn == turn)
        if last is not None:
            statement = statement.where(_items.c.turn > session.turn_count - last)
        rows = (await connection.execute(statement.order_by(_items.c.seq))).all()
    return item_rows(rows)


def _parsed(item_json: str) -> Any:
    try:
        return load_item(item_json)
    except ValueError:
        return None


def item_rows(rows: Sequence[sa.Row[Any]]) -> list[ItemRow]:
    """``hs_items`` rows as :class:`ItemRow` objects, their JSON parsed (``None`` if corrupt)
    and their turn's ``status`` taken from the row's ``status`` column when it has one."""
    items = load_items([row.item for row in rows])
    if items is None:  # some row is corrupt (or needs the exact parser): one by one
        items = [_parsed(row.item) for row in rows]
    return [
        ItemRow(
            seq=row.seq,
            turn=row.turn,
            role=row.role,
            item_type=row.item_type,
            text=row.text,
            created_at=as_utc(row.created_at),
            item=item,
            status=getattr(row, "status", None),
        )
        for row, item in zip(rows, items, strict=True)
    ]


async def turns(
    session_id: str,
    url: Database = None,
    *,
    turn: int | None = None,
    last: int | None = None,
) -> list[TurnInfo]:
    """The recorded turns of a session (``hs_turns``), in order: status, agent, model and
    usage. ``turn`` and ``last`` select as in :func:`show`. Turns with nothing recorded
    (stored by plain ``agents.Runner``) are not listed.

    Raises :class:`SessionNotFoundError` when the session does not exist.
    """
    _check_limit("last", last)
    async with reading(url) as engine, engine.connect() as connection:
        session = await require_session(connection, session_id)
        statement = sa.select(_turns).where(_turns.c.session_id == session_id)
        if turn is not None:
            statement = statement.where(_turns.c.turn == turn)
        if last is not None:
            statement = statement.where(_turns.c.turn > session.turn_count - last)
        rows = (await connection.execute(statement.order_by(_turns.c.turn))).all()
    return [
        TurnInfo(
            turn=row.turn,
            status=row.status,
            agent=row.agent,
            model=row.model,
            requests=row.requests,
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            total_tokens=row.total_tokens,
            started_at=as_utc(row.started_at) if row.started_at is not None else None,
            finished_at=as_utc(row.finished_at) if row.finished_at is not None else None,
        )
        for row in rows
    ]


async def _database_bytes(connection: AsyncConnection) -> int:
    if connection.dialect.name == "sqlite":
        pages = (await connection.exec_driver_sql("PRAGMA page_count")).scalar_one()
        size = (await connection.exec_driver_sql("PRAGMA page_size")).scalar_one()
        return int(pages) * int(size)
    value = await connection.scalar(sa.text("SELECT pg_database_size(current_database())"))
    return int(value or 0)


async def stats(url: Database = None) -> Stats:
    """Totals over the whole database: sessions, items, turns, activity span, size, the
    number of items of each type, turns by status and the usage reported for them."""
    async with reading(url) as engine, engine.connect() as connection:
        totals = (
            await connection.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(_sessions.c.item_count), 0),
                    sa.select(sa.func.count()).select_from(_ALLTURNS_PRESENT).scalar_subquery(),
                    sa.func.min(_sessions.c.created_at),
                    sa.func.max(_sessions.c.updated_at),
                )
            )
        ).one()
        by_type = await connection.execute(
            sa.select(_items.c.item_type, sa.func.count())
            .group_by(_items.c.item_type)
            .order_by(_items.c.item_type)
        )
        counts = {str(name): int(count) for name, count in by_type}
        by_status = await connection.execute(
            sa.select(_turns.c.status, sa.func.count())
            .group_by(_turns.c.status)
            .order_by(_turns.c.status)
        )
        statuses = {str(name): int(count) for name, count in by_status}
        usage = (
            await connection.execute(
                sa.select(
                    *(
                        sa.func.coalesce(sa.func.sum(column), 0)
                        for column in (
                            _turns.c.requests,
                            _turns.c.input_tokens,
                            _turns.c.output_tokens,
                            _turns.c.total_tokens,
                        )
                    )
                )
            )
        ).one()
        size = await _database_bytes(connection)
    first, last = totals[3], totals[4]
    return Stats(
        sessions=int(totals[0]),
        items=int(totals[1]),
        turns=int(totals[2]),
        first_activity=as_utc(first) if first is not None else None,
        last_activity=as_utc(last) if last is not None else None,
        database_bytes=size,
        items_by_type=counts,
        turns_by_status=statuses,
        requests=int(usage[0]),
        input_tokens=int(usage[1]),
        output_tokens=int(usage[2]),
        total_tokens=int(usage[3]),
    )
