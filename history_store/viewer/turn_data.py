"""What the viewer shows beyond the items: turn status and usage, and summaries.

Revision 0003 adds ``hs_turns`` (one row per turn: status, agent, model, usage) and 0004
``hs_summaries`` (summaries of item ranges written under a token budget). The viewer asks
once per app which of the two exist (:func:`probe`, through SQLAlchemy's inspector) and shows
"no status" and "no usage" where they are missing or hold nothing for a turn. Every query on
those tables is in this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import tables
from .._time import as_utc
from ..tools.inspect import TurnInfo

__all__ = ["ExtraTables", "TurnInfo", "Summary", "probe", "turn_infos", "summaries"]

_turns = tables.turns

_summaries = tables.summaries


@dataclass(frozen=True)
class ExtraTables:
    """Which of the optional tables the database has."""

    turns: bool
    summaries: bool


@dataclass(frozen=True)
class Summary:
    """One ``hs_summaries`` row: the text that stands for items ``first_seq..last_seq``."""

    first_seq: int
    last_seq: int
    text: str
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    created_at: datetime | None


def _utc(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None


async def probe(connection: AsyncConnection) -> ExtraTables:
    """Which optional tables exist (asked once per viewer app, not per request)."""

    def tables_present(sync_connection: Any) -> ExtraTables:
        inspector = sa.inspect(sync_connection)
        return ExtraTables(
            turns=inspector.has_table("hs_turns"), summaries=inspector.has_table("hs_summaries")
        )

    return await connection.run_sync(tables_present)


async def turn_infos(
    connection: AsyncConnection, session_id: str, first_turn: int, last_turn: int
) -> dict[int, TurnInfo]:
    """The ``hs_turns`` rows of turns ``first_turn..last_turn`` of a session, by turn (a
    primary key range, so a page of a long session reads only its own turns)."""
    statement = (
        sa.select(*(_turns.c[name] for name in TurnInfo.__dataclass_fields__))
        .where(
            _turns.c.session_id == session_id,
            _turns.c.turn >= first_turn,
            _turns.c.turn <= last_turn,
        )
        .order_by(_turns.c.turn)
    )
    rows = (await connection.execute(statement)).all()
    return {
        row.turn: TurnInfo(
            **{
                **row._asdict(),
                "started_at": _utc(row.started_at),
                "finished_at": _utc(row.finished_at),
            }
        )
        for row in rows
    }


async def summaries(
    connection: AsyncConnection, session_id: str, after_seq: int, up_to_seq: int | None
) -> list[Summary]:
    """The summaries of a session whose range ends after ``after_seq`` and at or before
    ``up_to_seq`` (``None``: no upper bound), in order: those that belong on one page."""
    statement = sa.select(*(_summaries.c[name] for name in Summary.__dataclass_fields__)).where(
        _summaries.c.session_id == session_id, _summaries.c.last_seq > after_seq
    )
    if up_to_seq is not None:
        statement = statement.where(_summaries.c.last_seq <= up_to_seq)
    rows = (await connection.execute(statement.order_by(_summaries.c.last_seq))).all()
    return [Summary(**{**row._asdict(), "created_at": _utc(row.created_at)}) for row in rows]
