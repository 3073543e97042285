"""``history-store meta``: read one session's metadata, or merge key/value pairs into it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..errors import SessionNotFoundError
from ._open import Database, writing

__all__ = ["meta", "metadata_value"]


def _reject_non_finite(constant: str) -> Any:
    raise ValueError(constant)


def metadata_value(text: str) -> Any:
    """A value typed by a person (a command-line argument, a form field): JSON when it parses
    as JSON (``12``, ``true``, ``null``, ``"12"``, ``[1, 2]``), else the text itself as a
    string (``gold``)."""
    try:
        return json.loads(text, parse_constant=_reject_non_finite)  # NaN is not JSON
    except ValueError:
        return text


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
