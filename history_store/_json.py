"""The one JSON format history_store prints: the CLI's ``--json`` and the viewer's JSON URLs.

One document on one line; non-ASCII text kept readable; timestamps ISO 8601 in UTC;
dataclasses as objects; ``Decimal`` as a number; bytes as hex.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from ._time import as_utc


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)


def to_json(document: Any) -> str:
    """``document`` in the one JSON format (see the module docstring)."""
    return json.dumps(document, ensure_ascii=False, default=_json_default)
