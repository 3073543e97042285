"""The one table-cell formatter every command prints through (``cli/_output.py``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from history_store.cli._output import cell, table


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "-"),
        (datetime(2026, 1, 10, 9, 0, 0, 123456, tzinfo=timezone.utc), "2026-01-10 09:00:00"),
        (datetime(2026, 1, 10, 9, 0, 0), "2026-01-10 09:00:00"),  # naive: UTC, as stored
        (datetime(2026, 1, 10, 11, 0, tzinfo=timezone(timedelta(hours=2))), "2026-01-10 09:00:00"),
        # Timestamps as SQLite hands them back, and ISO 8601 text.
        ("2026-01-10 09:00:00.000000", "2026-01-10 09:00:00"),
        ("2026-01-10 09:00:00", "2026-01-10 09:00:00"),
        ("2026-01-10T09:00:00.5Z", "2026-01-10 09:00:00"),
        ("2026-01-10T10:30:00+01:30", "2026-01-10 09:00:00"),
        # Text that only looks like one, or holds one among other words, stays as it is.
        ("2026-13-45 09:00:00", "2026-13-45 09:00:00"),
        ("at 2026-01-10 09:00:00.000000", "at 2026-01-10 09:00:00.000000"),
        ("2026-01-10", "2026-01-10"),
        ({"tier": "gold", "n": 1}, '{"tier": "gold", "n": 1}'),
        ("two\nlines\r\n", "two\\nlines\\n"),
        (7, "7"),
        (True, "true"),
        (False, "false"),
    ],
)
def test_cell(value: object, shown: str) -> None:
    assert cell(value) == shown


def test_table_formats_every_cell_the_same_way() -> None:
    rows = [("a", datetime(2026, 1, 10, 9, tzinfo=timezone.utc)), ("b", "2026-01-10 09:00:00.25")]
    assert table(["ID", "WHEN"], rows) == (
        "ID  WHEN\na   2026-01-10 09:00:00\nb   2026-01-10 09:00:00"
    )
