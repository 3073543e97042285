"""``history-store meta``: read one session's metadata, or merge key/value pairs into it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import SessionNotFoundError
from ._open import Database, writing

__all__ = ["meta"]


async def meta(
    session_id: str, url: Database = None, values: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The metadata object of session ``session_id`` (``{}`` if it has none); with
    ``values``, after merging them in (each key set, the others kept, in one transaction:
    :meth:`HistorySession.update_metadata`).

    Raises :class:`SessionNotFoundError` for a session that does not exist (none is
    created: a mistyped id is an error, not a new session), :class:`DatabaseNotFoundError`
    for a missing SQLite file, and :class:`InvalidArgumentError` for values that are not
    JSON.
    """
    async with writing(url, create=False) as store:
        session = store.session(session_id)
        found = await session.get_metadata()
        if found is None:
            raise SessionNotFoundError(
                f"no session {session_id!r} in this database; list them with: "
                "history-store sessions"
            )
        return await session.update_metadata(values) if values else found
