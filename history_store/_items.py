"""How one conversation item maps to a row: its JSON, role, type, plain text and turn.

Items are the SDK's ``TResponseInputItem`` dicts. The JSON is stored exactly as given
(``__fake_id__``, ``provider_data`` and every other key kept); the other columns are derived
from it for people reading the tables with SQL.
"""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from .backends.base import EncodedItem
from .budget.tokens import TokenCounter, default_counter
from .errors import InvalidArgumentError, InvalidItemError, InvalidSessionIdError

logger = logging.getLogger("history_store")

MAX_SESSION_ID_BYTES = 1024
"""Longest session id accepted, in UTF-8 bytes (PostgreSQL's btree rows must stay small)."""

_TEXT_PART_KEYS = ("text", "refusal", "transcript")


# Any integer beyond 64 bits has at least 19 digits (so do a few within: they take the
# exact path too, as do digit runs inside strings). Found by mapping every digit to "0" and
# looking for nineteen of them: a regular expression is ten times slower on megabytes.
_DIGITS_TO_ZERO = str.maketrans("123456789", "000000000")
_LONG_DIGIT_RUN = "0" * 19

CORRUPT: Any = object()
"""What the session's decoder returns for a row whose JSON is not an item."""


def validate_session_id(session_id: object) -> str:
    """Return ``session_id`` if every supported database can store it, else raise."""
    if not isinstance(session_id, str):
        raise InvalidSessionIdError(
            f"session_id must be a str, got {type(session_id).__name__}; pass a string id."
        )
    if not session_id:
        raise InvalidSessionIdError("session_id is empty; pass a non-empty string id.")
    if "\x00" in session_id:
        raise InvalidSessionIdError(
            "session_id contains a NUL character, which PostgreSQL cannot store; remove it."
        )
    try:
        size = len(session_id.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidSessionIdError(
            "session_id contains a lone surrogate and is not valid UTF-8; "
            "pass a properly encoded string."
        ) from exc
    if size > MAX_SESSION_ID_BYTES:
        raise InvalidSessionIdError(
            f"session_id is {size} bytes long; the limit is {MAX_SESSION_ID_BYTES} bytes. "
            "Use a shorter id (for example a hash of the long one)."
        )
    return session_id


def _reject_non_finite(value: str) -> Any:
    raise ValueError(f"{value} is not valid JSON")


# What json.dumps(item, ensure_ascii=..., allow_nan=False) does, without building a new
# encoder on each call (half of its time for a typical item).
_READABLE_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False)
_ASCII_JSON = json.JSONEncoder(ensure_ascii=True, allow_nan=False)


def dump_item(item: Mapping[str, Any]) -> str:
    """Serialize an item to the exact JSON text stored in ``hs_items.item``.

    Non-ASCII text is kept readable. A string holding a lone surrogate cannot be stored as
    UTF-8, so that item alone is written with ASCII escapes: it still round-trips exactly.
    """
    text = _READABLE_JSON.encode(item)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _ASCII_JSON.encode(item)
    return text


def load_item(item_json: str) -> Any:
    """Parse stored JSON; raises ``ValueError`` on a corrupt row.

    Only a JSON object is an item: anything else (an array, a bare string) would crash the
    SDK's input handling later, so it counts as corrupt too.
    """
    value = json.loads(item_json, parse_constant=_reject_non_finite)
    if not isinstance(value, dict):
        raise ValueError(f"stored item is a JSON {type(value).__name__}, not an object")
    return value


def load_or_skip(session_id: str, seq: int, item_json: str) -> Any:
    """The item stored at ``seq``, or :data:`CORRUPT` (with a warning naming the session and
    the seq) when its JSON is not an item: a corrupt row is skipped, never deleted."""
    try:
        return load_item(item_json)
    except ValueError as exc:
        logger.warning("skipping corrupt item in session %r at seq %d: %s", session_id, seq, exc)
        return CORRUPT


def load_items(items_json: Sequence[str]) -> list[Any] | None:
    """Parse many stored items at once, or ``None`` if any of them is corrupt.

    One parse of the joined array costs much less than one per row; the caller falls back to
    :func:`load_item` row by row to find (and report) the corrupt ones.
    """
    # orjson parses several times faster than json and refuses NaN/Infinity as we do; what it
    # refuses beyond that (lone surrogates, integers past 64 bits) the fallback reads. The
    # cyclic GC is paused meanwhile: the parse allocates thousands of containers, which
    # would start collections over the whole heap, and the new objects hold no cycles.
    text = "[" + ",".join(items_json) + "]"
    if _LONG_DIGIT_RUN in text.translate(_DIGITS_TO_ZERO):
        return None  # orjson would turn an integer past 64 bits into a float
    collecting = gc.isenabled()
    gc.disable()
    try:
        values = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    finally:
        if collecting:
            gc.enable()
    if len(values) != len(items_json) or not all(type(value) is dict for value in values):
        return None
    return values  # type: ignore[no-any-return]


def _clean_text(text: str) -> str | None:
    # The text column is a readable extract, so characters no database can store are dropped
    # here; the exact item stays intact in the JSON column.
    cleaned = text.replace("\x00", "")
    try:
        cleaned.encode("utf-8")
    except UnicodeEncodeError:
        cleaned = cleaned.encode("utf-8", "replace").decode("utf-8")
    return cleaned or None


def _content_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = []
        for part in content:
            if isinstance(part, Mapping):
                for key in _TEXT_PART_KEYS:
                    value = part.get(key)
                    if isinstance(value, str):
                        parts.append(value)
                        break
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts) if parts else None
    return None


def extract_text(item: Mapping[str, Any]) -> str | None:
    """Plain text of an item, for the ``text`` column and full-text search.

    Messages give their content's text parts; tool calls their arguments; tool outputs their
    output; reasoning its summary. Anything else gives ``None``.
    """
    text: str | None = None
    if "content" in item and "role" in item:
        text = _content_text(item.get("content"))
    elif isinstance(item.get("arguments"), str):
        text = item["arguments"]
    elif "output" in item:
        output = item["output"]
        text = output if isinstance(output, str) else _content_text(output)
    elif isinstance(item.get("summary"), list):
        text = _content_text(item["summary"])
    return _clean_text(text) if text else None


def item_type_of(item: Mapping[str, Any]) -> str:
    """The item's ``type``; an untyped item with a ``role`` is a ``message``."""
    value = item.get("type")
    if isinstance(value, str) and value:
        return value
    return "message" if "role" in item else "unknown"


def is_user_input(item: Mapping[str, Any]) -> bool:
    """True for a user-role message: each one starts a new turn."""
    return item.get("role") == "user" and item_type_of(item) == "message"


def _inexact_part(item: Mapping[str, Any]) -> str | None:
    """What ``json.dumps`` would silently change in ``item``, or ``None``.

    JSON turns a non-str key into a str (``{1: "a", "1": "b"}`` would load back as
    ``{"1": "b"}``: data lost) and a tuple into a list, so such items would not come back as
    given. Call only after ``json.dumps`` succeeded: it has already refused cycles.
    """
    stack: list[Any] = [item]
    while stack:
        value = stack.pop()
        if isinstance(value, tuple):
            return f"a tuple {value!r:.60} (use a list)"
        children = value.values() if isinstance(value, Mapping) else value
        if isinstance(value, Mapping):
            for key in value:
                if not isinstance(key, str):
                    return f"the {type(key).__name__} key {key!r:.60} (keys must be str)"
        stack.extend(child for child in children if isinstance(child, (Mapping, list, tuple)))
    return None


def _loads_back_equal(item_json: str, item: Mapping[str, Any]) -> bool:
    """The fast check that ``item`` is stored exactly: its JSON parses back equal to it.

    A tuple (which comes back a list) or a non-str key (which comes back a str) makes the
    two unequal. ``False`` only means "look closer" (:func:`_inexact_part`): orjson also
    refuses lone surrogates and very deep nesting, which JSON itself keeps exactly.
    """
    try:
        return bool(orjson.loads(item_json) == item)
    except orjson.JSONDecodeError:
        return False


def check_metadata(values: object) -> dict[str, Any]:
    """``values`` as session metadata: a dict whose keys are str and whose values JSON keeps
    exactly (as for items); else :class:`InvalidArgumentError` saying what is wrong."""
    if not isinstance(values, Mapping):
        raise InvalidArgumentError(
            f"metadata must be a dict of JSON values, not a {type(values).__name__}"
        )
    metadata = dict(values)
    try:
        _READABLE_JSON.encode(metadata).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:  # UnicodeEncodeError: a ValueError
        raise InvalidArgumentError(
            f"metadata cannot be stored as JSON: {exc}. Use plain dicts, lists, strings and "
            "finite numbers; nothing was stored."
        ) from exc
    inexact = _inexact_part(metadata)
    if inexact is not None:
        raise InvalidArgumentError(
            f"metadata holds {inexact}, which JSON would not give back as it was; nothing "
            "was stored."
        )
    return metadata


def encode_items(items: Sequence[Any], counter: TokenCounter | None = None) -> list[EncodedItem]:
    """Validate and encode a batch; raises :class:`InvalidItemError` naming the bad item.

    Each item's tokens are counted with ``counter`` (default: :func:`default_counter`), the
    count a token budget reads back (``hs_items.tokens``).
    """
    count = (counter or default_counter()).count_item
    encoded = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InvalidItemError(
                f"item {index} is a {type(item).__name__}, not a dict; "
                "session items must be JSON objects (the SDK's input item dicts)."
            )
        # RecursionError: nested deeper than the interpreter can encode; refused like the rest.
        try:
            item_json = dump_item(item)
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidItemError(
                f"item {index} cannot be stored as JSON: {exc}. "
                "Convert it to plain dicts, lists, strings and finite numbers first; "
                "nothing of this batch was stored."
            ) from exc
        inexact = None if _loads_back_equal(item_json, item) else _inexact_part(item)
        if inexact is not None:
            raise InvalidItemError(
                f"item {index} holds {inexact}, which JSON would not give back as it was; "
                "nothing of this batch was stored."
            )
        role = item.get("role")
        encoded.append(
            EncodedItem(
                item_json=item_json,
                role=_clean_text(role) if isinstance(role, str) else None,
                item_type=_clean_text(item_type_of(item)) or "unknown",
                text=extract_text(item),
                starts_turn=is_user_input(item),
                tokens=count(item),
            )
        )
    return encoded
