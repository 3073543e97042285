"""The migration harness: every bundled revision, on SQLite and PostgreSQL.

For each revision (``schema.history()``, so revisions added later are covered too), a
database is populated at the previous revision with awkward items, upgraded, downgraded and
upgraded again: every row of the previous revision's tables, and every item's bytes, must
come through unchanged, and the data must read back through HistorySession at head.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, func, inspect, select
from sqlalchemy.ext.asyncio import AsyncConnection

from history_store import HistoryStore, schema
from history_store._engine import make_engine, resolve_url
from history_store._items import dump_item, encode_items

REVISIONS = list(reversed(schema.history()))  # oldest first
BASE_TABLES = ("hs_sessions", "hs_items")
WHEN = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)

ITEMS: dict[str, list[dict[str, Any]]] = {
    "plain": [
        {"role": "user", "content": "hello"},
        {
            "role": "assistant",
            "content": [{"type": "output_text", "text": "hi", "annotations": []}],
        },
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a": 1}'},
        {"type": "function_call_output", "call_id": "c1", "output": "done"},
    ],
    "unicode ✓ 🎉 séance": [
        {"role": "user", "content": "ünïcödé ✓ 🎉 \u0000 nul and \ud800 lone surrogate"},
        {"role": "assistant", "content": 'line\nbreak "quotes" \\ back'},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "x" * 100_000}]},
        {"__fake_id__": "x", "role": "user", "content": [], "provider_data": {"n": [1, 2.5]}},
    ],
}
# Sessions may have gaps in seq (pop_item) and items with no text or role.
SEQS = {"plain": [1, 2, 4, 7], "unicode ✓ 🎉 séance": [1, 2, 3, 5]}


def _values(table: Table, known: dict[str, Any]) -> dict[str, Any]:
    """Values for every column of ``table`` as it exists at this revision."""
    values = {}
    for column in table.columns:
        if column.name in known:
            values[column.name] = known[column.name]
        elif not (column.nullable or column.server_default is not None):
            pytest.fail(
                f"{table.name}.{column.name} is required at this revision and the harness has "
                "no value for it: add one to _values' callers in tests/test_revisions.py"
            )
    return values


async def _reflect(connection: AsyncConnection) -> dict[str, Table]:
    def load(sync: Any) -> dict[str, Table]:
        metadata = MetaData()
        names = [n for n in BASE_TABLES if inspect(sync).has_table(n)]
        return {name: Table(name, metadata, autoload_with=sync) for name in names}

    return await connection.run_sync(load)


async def populate(connection: AsyncConnection) -> None:
    found = await _reflect(connection)
    for session_id, items in ITEMS.items():
        seqs = SEQS[session_id]
        turns = sum(1 for item in items if item.get("role") == "user")
        await connection.execute(
            found["hs_sessions"].insert(),
            _values(found["hs_sessions"], {
                "session_id": session_id, "created_at": WHEN, "updated_at": WHEN,
                "metadata": {"k": "v ✓"}, "item_count": len(items), "turn_count": turns,
                "last_seq": seqs[-1],
            }),
        )  # fmt: skip
        rows = []
        turn = 0
        for seq, encoded in zip(seqs, encode_items(items), strict=True):
            turn += encoded.starts_turn
            rows.append(_values(found["hs_items"], {
                "session_id": session_id, "seq": seq, "turn": turn, "role": encoded.role,
                "item_type": encoded.item_type, "text": encoded.text, "item": encoded.item_json,
                "created_at": WHEN,
            }))  # fmt: skip
        await connection.execute(found["hs_items"].insert(), rows)


async def snapshot(connection: AsyncConnection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the base tables, with ``item``/``text`` as the bytes stored."""
    found = await _reflect(connection)
    as_bytes = (
        (lambda c: func.cast(c, _blob())) if connection.dialect.name == "sqlite"
        else (lambda c: func.convert_to(c, "UTF8"))
    )  # fmt: skip
    result: dict[str, list[tuple[Any, ...]]] = {}
    for name, table in found.items():
        columns = [
            as_bytes(col).label(col.name) if col.name in ("item", "text") else col
            for col in table.columns
        ]
        order = list(table.primary_key.columns)
        rows = await connection.execute(select(*columns).order_by(*order))
        result[name] = [tuple(row) for row in rows.all()]
    return result


def _blob() -> Any:
    from sqlalchemy import LargeBinary

    return LargeBinary()


async def _state(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = make_engine(resolve_url(url))
    try:
        async with engine.connect() as connection:
            return await snapshot(connection)
    finally:
        await engine.dispose()


async def _populate(url: str) -> None:
    engine = make_engine(resolve_url(url))
    try:
        async with engine.begin() as connection:
            await populate(connection)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("revision", REVISIONS, ids=[r.revision for r in REVISIONS])
async def test_revision_upgrades_and_downgrades_without_changing_items(
    db_url: str, revision: schema.Revision
) -> None:
    previous = revision.down_revision
    if previous is None:
        await schema.upgrade(db_url, revision.revision)
        await schema.downgrade(db_url, "base")
        assert await _state(db_url) == {}
        assert await schema.current(db_url) is None
        await schema.upgrade(db_url, revision.revision)
        assert set(await _state(db_url)) == set(BASE_TABLES)
        return
    await schema.upgrade(db_url, previous)
    await _populate(db_url)
    before = await _state(db_url)
    assert [len(before[name]) for name in BASE_TABLES] == [2, 8]
    assert before["hs_items"][4][6] == dump_item(ITEMS["unicode ✓ 🎉 séance"][0]).encode()

    await schema.upgrade(db_url, revision.revision)
    after = await _state(db_url)
    columns_before = {name: len(rows[0]) for name, rows in before.items()}
    # New columns may be appended; the columns that existed keep every value.
    assert {
        name: [row[: columns_before[name]] for row in rows] for name, rows in after.items()
    } == before

    await schema.downgrade(db_url, previous)
    assert await schema.current(db_url) == previous
    assert await _state(db_url) == before

    await schema.upgrade(db_url)
    async with HistoryStore(db_url, migrate="check") as store:
        for session_id, items in ITEMS.items():
            assert await store.session(session_id).get_items() == items
        session = store.session("plain")
        await session.add_items([{"role": "user", "content": "after"}])
        assert (await session.get_items())[-1] == {"role": "user", "content": "after"}
    # Down to base and back leaves nothing behind and works again.
    await schema.downgrade(db_url, "base")
    assert await _state(db_url) == {}
    await schema.upgrade(db_url)
    assert await schema.current(db_url) == schema.head_revision()
