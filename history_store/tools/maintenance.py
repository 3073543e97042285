"""Removing history: ``history-store delete`` and ``prune``.

Both keep the sessions' counters consistent (``item_count`` is recounted; ``turn_count`` and
``last_seq`` never go back, so turn numbers and seqs of new items keep growing) and lock the
session rows they change, so a session being written meanwhile is never half-pruned.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import tables
from ..backends import sqlite_fts as search_index
from ..errors import InvalidArgumentError, SessionNotFoundError
from ..store import HistoryStore
from ._open import Database, chunks, in_transaction, writing
from ._progress import Progress

__all__ = ["PruneResult", "delete", "parse_age", "prune"]

_items = tables.items
_sessions = tables.sessions
_BATCH = 200
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
# Far enough back for any history, near enough that ``now - age`` is still a datetime.
_MAX_AGE = timedelta(days=3_650_000)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class PruneResult:
    """What :func:`delete` or :func:`prune` removed (or, with ``dry_run``, would remove):
    ``sessions`` deleted whole, ``items`` deleted in all."""

    sessions: int
    items: int
    dry_run: bool = False


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``2w``, ``90m``, ``45s`` as a timedelta; raises
    :class:`InvalidArgumentError` for anything else."""
    match = _AGE.match(text)
    if match is None:
        raise InvalidArgumentError(
            f"cannot read the age {text!r}: use a number and a unit, e.g. 30d, 12h, 2w, 90m"
        )
    try:
        age = timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    except OverflowError:
        age = _MAX_AGE + _MAX_AGE
    if age > _MAX_AGE:
        raise InvalidArgumentError(f"the age {text!r} is more than {_MAX_AGE.days} days")
    return age


async def _locked_sessions(connection: AsyncConnection, where: Any) -> list[Any]:
    statement = sa.select(_sessions.c.session_id, _sessions.c.item_count, _sessions.c.turn_count)
    statement = statement.where(where).order_by(_sessions.c.session_id)
    return list((await connection.execute(statement.with_for_update())).all())


async def _vacuum(store: HistoryStore) -> None:
    """Give the freed pages back to the file system (SQLite only; autovacuum does it on PG)."""
    if store.dialect != "sqlite":
        return
    engine = await store.engine()
    async with engine.connect() as connection:
        # VACUUM cannot run inside a transaction.
        await connection.execution_options(history_store_begin="AUTOCOMMIT")
        await connection.exec_driver_sql("VACUUM")
    await _rebuild_search_index(store)


async def _rebuild_search_index(store: HistoryStore) -> None:
    """The FTS index is keyed on hs_items' rowid, which VACUUM is allowed to renumber: empty
    the queue and rebuild the index from the rows, in one write transaction. As two
    statements, a row another writer queued between them was indexed by the rebuild and
    again from the queue, and FTS5 called the database malformed (reliability issue 15.3)."""

    async def rebuild(connection: AsyncConnection) -> None:
        for statement in search_index.REBUILD:
            await connection.exec_driver_sql(statement)

    await in_transaction(store, "prune", rebuild)


def _no_such_sessions(missing: list[str], done: str) -> SessionNotFoundError:
    return SessionNotFoundError(
        f"no session {', '.join(map(repr, missing))} in this database; nothing was {done}. "
        "List sessions with: history-store sessions"
    )


async def delete(session_ids: Sequence[str], url: Database = None) -> PruneResult:
    """Delete the named sessions and all their items, in one transaction.

    Raises :class:`SessionNotFoundError` (deleting nothing) when any of them does not exist,
    and :class:`DatabaseNotFoundError` for a missing SQLite file.
    """
    if not session_ids:
        raise InvalidArgumentError("name at least one session to delete")
    wanted = list(dict.fromkeys(session_ids))

    async def remove(connection: AsyncConnection) -> PruneResult:
        rows = await _locked_sessions(connection, _sessions.c.session_id.in_(wanted))
        missing = [sid for sid in wanted if sid not in {row.session_id for row in rows}]
        if missing:
            raise _no_such_sessions(missing, "deleted")
        items = await connection.execute(sa.delete(_items).where(_items.c.session_id.in_(wanted)))
        await connection.execute(sa.delete(_sessions).where(_sessions.c.session_id.in_(wanted)))
        return PruneResult(sessions=len(rows), items=items.rowcount)

    async with writing(url, create=False) as store:
        return await in_transaction(store, "delete", remove)


async def _prune_idle(
    connection: AsyncConnection, ids: list[str], cutoff: datetime, dry_run: bool
) -> tuple[int, int]:
    # Re-checked under the lock: a session written since it was listed is no longer idle.
    idle = _sessions.c.session_id.in_(ids) & (_sessions.c.updated_at < cutoff)
    rows = await _locked_sessions(connection, idle)
    ids = [row.session_id for row in rows]
    items = sum(row.item_count for row in rows)
    if not dry_run:
        await connection.execute(sa.delete(_items).where(_items.c.session_id.in_(ids)))
        await connection.execute(sa.delete(_sessions).where(_sessions.c.session_id.in_(ids)))
    return len(rows), items


async def _prune_turns(
    connection: AsyncConnection, ids: list[str], keep: int, dry_run: bool
) -> tuple[int, int]:
    removed = 0
    for row in await _locked_sessions(connection, _sessions.c.session_id.in_(ids)):
        old = (_items.c.session_id == row.session_id) & (_items.c.turn <= row.turn_count - keep)
        if dry_run:
            removed += int(await connection.scalar(sa.select(sa.func.count()).where(old)) or 0)
            continue
        result = await connection.execute(sa.delete(_items).where(old))
        if result.rowcount:
            removed += result.rowcount
            await connection.execute(
                sa.update(_sessions)
                .where(_sessions.c.session_id == row.session_id)
                .values(item_count=_sessions.c.item_count - result.rowcount)
            )
    return 0, removed


async def _require_sessions(connection: AsyncConnection, session_ids: list[str]) -> None:
    statement = sa.select(_sessions.c.session_id).where(_sessions.c.session_id.in_(session_ids))
    found = set(await connection.scalars(statement))
    missing = [session_id for session_id in session_ids if session_id not in found]
    if missing:
        raise _no_such_sessions(missing, "pruned")


async def prune(
    url: Database = None,
    *,
    older_than: timedelta | None = None,
    keep_last_turns: int | None = None,
    session_ids: Sequence[str] | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> PruneResult:
    """Delete old history; give exactly one of ``older_than`` and ``keep_last_turns``.

    ``older_than`` deletes whole sessions with no activity for that long.
    ``keep_last_turns=N`` keeps the last N turns of every session and deletes older items
    (turn numbers stay as they were). ``session_ids`` limits either to those sessions; if any
    of them does not exist, :class:`SessionNotFoundError` is raised and nothing is pruned.
    Sessions are processed in batches, each one transaction. With ``dry_run`` nothing changes
    and the result says what would be deleted. After a real prune that removed something,
    SQLite's file is compacted with ``VACUUM``.
    """
    if (older_than is None) == (keep_last_turns is None):
        raise InvalidArgumentError("give exactly one of older_than and keep_last_turns")
    if keep_last_turns is not None and keep_last_turns < 0:
        raise InvalidArgumentError(f"keep_last_turns must be >= 0, not {keep_last_turns}")
    wanted = list(dict.fromkeys(session_ids)) if session_ids is not None else None
    async with writing(url, create=False) as store:
        engine = await store.engine()
        cutoff = datetime.now(timezone.utc) - (older_than or timedelta())
        if older_than is not None:
            where: Any = _sessions.c.updated_at < cutoff
        else:
            where = _sessions.c.turn_count > keep_last_turns
        if wanted is not None:
            where = where & _sessions.c.session_id.in_(wanted)
        async with engine.connect() as connection:
            if wanted is not None:
                await _require_sessions(connection, wanted)
            statement = sa.select(_sessions.c.session_id).where(where)
            ids = list(await connection.scalars(statement.order_by(_sessions.c.session_id)))
        sessions = items = 0
        for done, batch in enumerate(chunks(ids, _BATCH), start=1):

            async def step(connection: AsyncConnection, batch: list[str] = batch) -> Any:
                if older_than is not None:
                    return await _prune_idle(connection, batch, cutoff, dry_run)
                return await _prune_turns(connection, batch, keep_last_turns or 0, dry_run)

            batch_sessions, batch_items = await in_transaction(store, "prune", step)
            sessions, items = sessions + batch_sessions, items + batch_items
            if progress is not None:
                progress(min(done * _BATCH, len(ids)), len(ids))
        if items and not dry_run:
            await _vacuum(store)
    return PruneResult(sessions=sessions, items=items, dry_run=dry_run)
