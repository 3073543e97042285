"""Reading the Agents SDK's SQL session tables, in the order the SDK reads them.

``SQLiteSession`` / ``AsyncSQLiteSession`` / ``SQLAlchemySession`` keep a sessions table and a
messages table; ``AdvancedSQLiteSession`` adds ``message_structure`` (which message is on
which branch, at which position) and ``turn_usage``. Everything is read in keyset pages, so
memory stays flat whatever the history's size. Only lightweight ``table()``/``column()``
constructs are used: values come back exactly as stored (SQLite timestamps as text).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Select, TableClause, and_, column, func, or_, select, table, union
from sqlalchemy.ext.asyncio import AsyncConnection

from ..errors import ImportFormatError
from ._open import keyset_pages

if TYPE_CHECKING:
    from typing_extensions import Unpack

    _AnySelect = Select[Unpack[tuple[Any, ...]]]


@dataclass(frozen=True)
class SdkLayout:
    """Where one SDK store keeps its rows, and how its ``get_items`` orders them."""

    sessions: TableClause
    messages: TableClause
    structure: TableClause | None
    usage: TableClause | None
    order: Literal["id", "created_at"]
    branch: str


def make_layout(
    names: Sequence[str],
    *,
    sessions_table: str,
    messages_table: str,
    order: Literal["id", "created_at"],
    branch: str,
    where: str,
) -> SdkLayout:
    """The layout of a store whose database has tables ``names``; raises
    :class:`ImportFormatError` naming the option to pass when the messages table is absent."""
    if messages_table not in names:
        found = ", ".join(sorted(names)) or "no tables"
        raise ImportFormatError(
            f"no SDK messages table {messages_table!r} in {where} (found: {found}); "
            "pass --messages-table/--sessions-table if the SDK session used custom names"
        )
    has_structure = "message_structure" in names
    return SdkLayout(
        sessions=table(sessions_table, column("session_id"), column("created_at"),
                       column("updated_at")),
        messages=table(messages_table, column("id"), column("session_id"),
                       column("message_data"), column("created_at")),
        structure=table("message_structure", column("session_id"), column("message_id"),
                        column("branch_id"), column("sequence_number"),
                        column("branch_turn_number")) if has_structure else None,
        usage=table("turn_usage", column("session_id"), column("branch_id"),
                    column("user_turn_number"), column("requests"), column("input_tokens"),
                    column("output_tokens"), column("total_tokens"))
        if "turn_usage" in names else None,
        order=order,
        branch=branch,
    )  # fmt: skip


async def session_ids(
    connection: AsyncConnection, layout: SdkLayout, has_sessions_table: bool
) -> AsyncIterator[str]:
    # Messages whose session row is missing still reach the model through the SDK, so ids
    # come from both tables; keyset pages keep memory flat in the number of sessions.
    parts = [select(layout.messages.c.session_id)]
    if has_sessions_table:
        parts.append(select(layout.sessions.c.session_id))
    ids = union(*parts).subquery()
    async for session_id in keyset_pages(connection, ids.c.session_id):
        yield session_id


async def is_advanced(connection: AsyncConnection, layout: SdkLayout, session_id: str) -> bool:
    """An AdvancedSQLiteSession reads items through message_structure: if the session has
    structure rows, that is what the SDK shows; else it is a plain SQLiteSession's."""
    if layout.structure is None:
        return False
    found = await connection.scalar(
        select(layout.structure.c.session_id)
        .where(layout.structure.c.session_id == session_id)
        .limit(1)
    )
    return found is not None


def page_query(
    layout: SdkLayout, session_id: str, advanced: bool, after: tuple[Any, ...] | None, size: int
) -> _AnySelect:
    """The next page of a session's rows, in the order the SDK's ``get_items`` returns them,
    as (key..., message_data, created_at)."""
    m = layout.messages
    if advanced:
        s = layout.structure
        assert s is not None
        statement: _AnySelect = (
            select(s.c.sequence_number, m.c.message_data, m.c.created_at)
            .select_from(m.join(s, m.c.id == s.c.message_id))
            .where(m.c.session_id == session_id, s.c.branch_id == layout.branch)
            .order_by(s.c.sequence_number)
        )
        if after is not None:
            statement = statement.where(s.c.sequence_number > after[0])
        return statement.limit(size)
    if layout.order == "id":
        statement = select(m.c.id, m.c.message_data, m.c.created_at).order_by(m.c.id)
        if after is not None:
            statement = statement.where(m.c.id > after[0])
    else:
        # SQLAlchemySession orders by (created_at, id).
        statement = select(m.c.created_at, m.c.id, m.c.message_data, m.c.created_at).order_by(
            m.c.created_at, m.c.id
        )
        if after is not None:
            statement = statement.where(
                or_(m.c.created_at > after[0], and_(m.c.created_at == after[0], m.c.id > after[1]))
            )
    return statement.where(m.c.session_id == session_id).limit(size)


async def row_pages(
    connection: AsyncConnection, layout: SdkLayout, session_id: str, advanced: bool, size: int
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """The session's rows in pages; each page is its own short read."""
    key_width = 1 if advanced or layout.order == "id" else 2
    after: tuple[Any, ...] | None = None
    while True:
        query = page_query(layout, session_id, advanced, after, size)
        page = [tuple(row) for row in (await connection.execute(query)).all()]
        if page:
            yield page
        if len(page) < size:
            return
        after = page[-1][:key_width]


async def branch_info(
    connection: AsyncConnection, layout: SdkLayout, session_id: str
) -> dict[str, Any]:
    """Branches and per-turn usage of an AdvancedSQLiteSession, for ``hs_sessions.metadata``."""
    s = layout.structure
    assert s is not None
    rows = await connection.execute(
        select(s.c.branch_id, func.count(), func.max(s.c.branch_turn_number))
        .where(s.c.session_id == session_id)
        .group_by(s.c.branch_id)
        .order_by(s.c.branch_id)
    )
    info: dict[str, Any] = {
        "branch": layout.branch,
        "branches": [{"branch_id": b, "items": n, "turns": t or 0} for b, n, t in rows.all()],
    }
    if layout.usage is not None:
        u = layout.usage
        usage = await connection.execute(
            select(u.c.branch_id, u.c.user_turn_number, u.c.requests, u.c.input_tokens,
                   u.c.output_tokens, u.c.total_tokens)
            .where(u.c.session_id == session_id)
            .order_by(u.c.branch_id, u.c.user_turn_number)
        )  # fmt: skip
        keys = ("branch_id", "turn", "requests", "input_tokens", "output_tokens", "total_tokens")
        info["turn_usage"] = [dict(zip(keys, row, strict=True)) for row in usage.all()]
    return info
