"""docs/schema.md: every ```sql block runs on SQLite and PostgreSQL and returns what the
fixture database holds; every table column and view is documented."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_support import ACTIVE, SESSIONS, populate

from history_store import tables
from history_store.budget.tokens import default_counter
from history_store.tools.sql import sql

DOC = Path(__file__).resolve().parent.parent / "docs" / "schema.md"
SQL_BLOCK = re.compile(r"```sql\n(.*?)```", re.DOTALL)

ARGS = '{"order": 7}'
TOKENS = [default_counter().count_item(item) for _, item in SESSIONS["support-42"][3]]
EXPECTED: list[list[tuple[Any, ...]]] = [
    # 1. most recently active first
    [("support-42", 8, 2), ("sales-1", 4, 2), ("support-7", 2, 1)],
    # 2. last turn of support-42
    [
        (5, "user", "message", "How long will the refund take?"),
        (6, None, "function_call", ARGS),
        (7, None, "function_call_output", "3 days"),
        (8, "assistant", "message", "Your refund arrives in 3 days."),
    ],
    # 3. the sales-1 conversation
    [
        (1, 1, "user", "Do you ship to Norway?"),
        (2, 1, "assistant", "Yes, we ship to Norway."),
        (3, 2, "user", "Great, thanks"),
        (4, 2, "assistant", "You are welcome!"),
    ],
    # 4. tool calls with outputs
    [
        ("support-42", "lookup_order", ARGS, "status: lost in transit"),
        ("support-42", "refund_eta", ARGS, "3 days"),
    ],
    # 5. idle for 30 days
    [("sales-1",), ("support-7",)],
    # 6. items per type
    [("message", 10), ("function_call", 2), ("function_call_output", 2)],
    # 7. first user message of each session
    [
        ("sales-1", "Do you ship to Norway?"),
        ("support-42", "My order 7 has not arrived, I want a refund"),
        ("support-7", "Bonjour, où est ma facture ?"),
    ],
    # 8. totals
    [(3, 14, 5)],
    # 9. mentions of "refund"
    [
        ("support-42", 1, "My order 7 has not arrived, I want a refund"),
        ("support-42", 4, "Sorry! Order 7 was lost. I have started a refund."),
        ("support-42", 5, "How long will the refund take?"),
        ("support-42", 8, "Your refund arrives in 3 days."),
    ],
    # 10. calls per tool
    [("lookup_order", 1), ("refund_eta", 1)],
    # 11. tokens and cost per session (support-7's turn has no usage row)
    [
        ("sales-1", 2, 2, 280, 30, (280 * 15 + 30 * 60) // 100),
        ("support-42", 2, 4, 2200, 100, (2200 * 15 + 100 * 60) // 100),
    ],
    # 12. tokens per day
    [
        ("2025-02-01", 2, 310),
        ("2026-01-10", 1, 960),
        (ACTIVE.strftime("%Y-%m-%d"), 1, 1340),
    ],
    # 13. the 2,000-token window of support-42: all of it (the counts are the default
    # counter's, as import stored them)
    [
        (seq, turn, TOKENS[seq - 1], sum(TOKENS[:seq]))
        for seq, turn in enumerate([1, 1, 1, 1, 2, 2, 2, 2], 1)
    ],
    # 14. both turns in the window (it starts at seq 1), none summarized
    [
        (1, 4, sum(TOKENS[:4]), "completed", 1, 0),
        (2, 4, sum(TOKENS[4:]), "completed", 1, 0),
    ],
    # 15. the calibration: the highest of 900 / 800 and 1300 / 1000
    [("support-42", 2, 1.3)],
]


def doc_queries() -> list[str]:
    return SQL_BLOCK.findall(DOC.read_text(encoding="utf-8"))


def test_the_doc_has_every_query() -> None:
    assert len(doc_queries()) == 15 == len(EXPECTED)


async def test_every_doc_query_returns_the_expected_rows(
    db_url: str, tmp_path: Path, as_reader: Callable[[str], str]
) -> None:
    await populate(db_url, tmp_path)
    db_url = as_reader(db_url)
    for number, (query, expected) in enumerate(zip(doc_queries(), EXPECTED, strict=True), 1):
        result = await sql(query, db_url)
        assert [tuple(row) for row in result.rows] == expected, f"query {number}:\n{query}"


def test_every_column_and_view_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for table in tables.metadata.sorted_tables:
        section = text.split(f"### `{table.name}`", 1)[1].split("\n### ", 1)[0]
        for column in table.columns:
            assert f"| `{column.name}`" in section, f"{table.name}.{column.name} undocumented"
    for name in (*tables.VIEWS, "hs_items_fts", "ix_hs_items_text_fts"):
        assert f"`{name}`" in text


@pytest.mark.parametrize("view", tables.VIEWS)
async def test_view_columns_match_the_doc(
    db_url: str, tmp_path: Path, view: str, as_reader: Callable[[str], str]
) -> None:
    await populate(db_url, tmp_path)
    db_url = as_reader(db_url)
    section = DOC.read_text(encoding="utf-8").split(f"### `{view}`", 1)[1].split("\n##", 1)[0]
    documented = re.findall(r"^\| `(\w+)`", section, re.MULTILINE)
    result = await sql(f"SELECT * FROM {view}", db_url)  # noqa: S608 (fixed view names)
    assert result.columns == documented
