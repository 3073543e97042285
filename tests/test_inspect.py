"""The library functions behind the CLI, on real SQLite files and PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cli_support import SESSIONS, export_text, populate
from sqlalchemy import text

from history_store import (
    HistoryStore,
    ImportFormatError,
    InvalidArgumentError,
    SchemaOutOfDateError,
)
from history_store._engine import make_engine, resolve_url
from history_store.cli._progress import ProgressBar
from history_store.schema import downgrade, upgrade
from history_store.tools.inspect import sessions, show, stats
from history_store.tools.maintenance import delete, parse_age, prune
from history_store.tools.search import search
from history_store.tools.sql import sql
from history_store.tools.transfer import export, import_

CONVERSATION: list[Any] = [
    {"role": "user", "content": "Zähle bis drei, bitte 🙂"},
    {"type": "function_call", "call_id": "c9", "name": "count", "arguments": '{"to": 3}'},
    {"type": "function_call_output", "call_id": "c9", "output": "1 2 3"},
    {"role": "assistant", "content": [{"type": "output_text", "text": "Eins, zwei, drei."}]},
    {"role": "user", "content": "lone \ud800 surrogate and 1.5e300"},
]


async def _records(url: str, session_id: str) -> tuple[list[Any], tuple[int, int, int]]:
    """A session's items and its (item_count, turn_count, last_seq) counters."""
    async with HistoryStore(url) as store:
        items = await store.session(session_id).get_items()
        engine = await store.engine()
        async with engine.connect() as connection:
            counters = (
                await connection.execute(
                    text(
                        "SELECT item_count, turn_count, last_seq FROM hs_sessions "
                        "WHERE session_id = :s"
                    ),
                    {"s": session_id},
                )
            ).one()
    return items, tuple(counters)  # type: ignore[return-value]


async def test_export_then_import_into_the_other_database_round_trips(
    db_url: str, tmp_path: Path
) -> None:
    source = f"sqlite+aiosqlite:///{tmp_path / 'source.db'}"
    async with HistoryStore(source) as store:
        session = store.session("de")
        await session.add_items(CONVERSATION[:4])
        await session.add_items(CONVERSATION[4:])
        await session.pop_item()
        await session.add_items(CONVERSATION[4:])
    buffer = io.StringIO()
    summary = await export(buffer, source)
    assert (summary.sessions, summary.items) == (1, 5)
    await upgrade(db_url)
    imported = await import_(io.StringIO(buffer.getvalue()), db_url)
    assert (imported.sessions, imported.items) == (1, 5)
    # seq 5 was popped, so the last item is seq 6 and last_seq stays 6.
    assert await _records(db_url, "de") == (CONVERSATION, (5, 2, 6))
    again = io.StringIO()
    await export(again, db_url)
    assert again.getvalue() == buffer.getvalue()
    async with HistoryStore(db_url) as store:
        await store.session("de").add_items([{"role": "user", "content": "weiter"}])
    items = await show("de", db_url, last=1)
    assert [(row.seq, row.turn, row.text) for row in items] == [(7, 3, "weiter")]


async def test_import_is_all_or_nothing_per_session(db_url: str, tmp_path: Path) -> None:
    await upgrade(db_url)
    lines = export_text().splitlines(keepends=True)
    # Line 7 (support-42's first item) is fine, line 8 is cut in half.
    broken = "".join(lines[:8]) + lines[8][:20] + "\n" + "".join(lines[9:])
    with pytest.raises(ImportFormatError) as error:
        await import_(io.StringIO(broken), db_url)
    assert str(error.value).startswith("line 9: not valid JSON")
    page = await sessions(db_url)
    assert [(s.session_id, s.items) for s in page.sessions] == [("sales-1", 4)]
    # A session whose items stop short of what it declares is not imported either.
    truncated = "".join(lines[:-1])
    with pytest.raises(ImportFormatError) as error:
        await import_(io.StringIO(truncated), db_url)
    assert "session 'support-7' declares 2 items but 1 follow it" in str(error.value)
    page = await sessions(db_url)
    assert [(s.session_id, s.items) for s in page.sessions] == [("sales-1", 4), ("support-42", 8)]


async def test_import_merges_into_an_existing_session(db_url: str, tmp_path: Path) -> None:
    await upgrade(db_url)
    from_file = [item for _, item in SESSIONS["sales-1"][3]]
    async with HistoryStore(db_url) as store:
        await store.session("sales-1").add_items(from_file[:1])  # type: ignore[list-item]
    summary = await import_(io.StringIO(export_text()), db_url)
    assert (summary.sessions, summary.items) == (3, 13)
    items, counters = await _records(db_url, "sales-1")
    # seq 1 was already there (the file's first item) and is kept; seqs 2-4 come from the file.
    assert items == from_file
    assert counters == (4, 2, 4)


async def test_import_rejects_foreign_files(sqlite_url: str) -> None:
    with pytest.raises(ImportFormatError) as error:
        await import_(io.StringIO('{"hello": 1}\n'), sqlite_url)
    assert str(error.value).startswith("line 1: not a history_store export")
    with pytest.raises(ImportFormatError) as error:
        await import_(io.StringIO(""), sqlite_url)
    assert str(error.value) == "the file is empty; expected a history_store export"


async def test_search_follows_every_change(db_url: str, tmp_path: Path) -> None:
    await populate(db_url, tmp_path)

    async def hits(words: str) -> list[tuple[str, int]]:
        return [(hit.session_id, hit.seq) for hit in await search(words, db_url)]

    assert await hits("norway") == [("sales-1", 1), ("sales-1", 2)]
    assert await hits("ship norway") == [("sales-1", 1), ("sales-1", 2)]
    assert await hits('"norway" OR AND (') == []
    async with HistoryStore(db_url) as store:
        session = store.session("sales-1")
        await session.add_items([{"role": "user", "content": "Ship to Norway again?"}])
        assert await hits("norway") == [("sales-1", 1), ("sales-1", 2), ("sales-1", 5)]
        await session.pop_item()
    assert await hits("norway") == [("sales-1", 1), ("sales-1", 2)]
    await prune(db_url, keep_last_turns=1)
    assert await hits("norway") == []
    assert await hits("refund") == [("support-42", 5), ("support-42", 8)]
    await delete(["support-42"], db_url)
    assert await hits("refund") == []
    assert await hits("facture") == [("support-7", 1), ("support-7", 2)]


async def test_sessions_pages_cover_every_session_once(db_url: str) -> None:
    await upgrade(db_url)
    async with HistoryStore(db_url) as store:
        for number in range(23):
            await store.session(f"s{number:02d}").add_items([{"role": "user", "content": "x"}])
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        page = await sessions(db_url, after=after, limit=10)
        seen += [s.session_id for s in page.sessions]
        pages += 1
        if page.next_after is None:
            break
        after = page.next_after
    assert (pages, seen) == (3, [f"s{n:02d}" for n in range(23)])


async def test_sessions_by_metadata_value(db_url: str, tmp_path: Path) -> None:
    await populate(db_url, tmp_path)
    async with HistoryStore(db_url) as store:
        engine = await store.engine()
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE hs_sessions SET metadata = :m WHERE session_id = 'sales-1'"),
                {"m": '{"tier": 3, "customer": null}'},
            )

    async def ids(**metadata: Any) -> list[str]:
        page = await sessions(db_url, metadata=metadata)
        return [s.session_id for s in page.sessions]

    assert [s.session_id for s in (await sessions(db_url, metadata_key="customer")).sessions] == [
        "sales-1",
        "support-42",
        "support-7",
    ]
    assert await ids(customer="acme") == ["support-42"]
    assert await ids(tier=3) == ["sales-1"]  # a number matches the number, not its text
    assert await ids(tier="3") == []
    assert await ids(tier="gold") == ["support-42"]
    assert await ids(customer=None) == ["sales-1"]  # JSON null
    assert await ids(tier="Gold") == []  # exact, case-sensitive
    with pytest.raises(InvalidArgumentError, match="compares a string, number"):
        await ids(tier=["gold"])


EMPTY = hashlib.sha256(b"").hexdigest()


def _snapshot(directory: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.iterdir())
    }


async def test_readers_never_change_the_database_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    await populate(url, tmp_path)
    before = _snapshot(tmp_path)
    assert set(before) == {"history.db", "fixture.jsonl"}
    await sessions(url, metadata_key="tier")
    await show("support-42", url)
    await search("refund", url)
    await sql("SELECT * FROM hs_messages", url)
    await stats(url)
    await export(io.StringIO(), url)
    after = _snapshot(tmp_path)
    assert after["history.db"] == before["history.db"]
    # A WAL database cannot be read without its -wal and -shm files, so SQLite makes them
    # (the -wal empty); the next writer to close removes them. Nothing else may appear.
    assert set(after) - set(before) <= {"history.db-wal", "history.db-shm"}
    assert after.get("history.db-wal", EMPTY) == EMPTY


async def test_readers_refuse_an_old_or_empty_schema(db_url: str, tmp_path: Path) -> None:
    if db_url.startswith("sqlite"):
        # An SQLite file with no schema at all is created by a writer, then emptied.
        async with HistoryStore(db_url) as store:
            await store.session("a").add_items([{"role": "user", "content": "x"}])
        await downgrade(db_url, "base")
    with pytest.raises(SchemaOutOfDateError) as error:
        await sessions(db_url)
    assert error.value.current is None
    assert error.value.command.endswith("db upgrade")
    await upgrade(db_url, "0001")
    with pytest.raises(SchemaOutOfDateError) as error:
        await search("x", db_url)
    assert error.value.current == "0001"


async def _schema_names(url: str) -> set[str]:
    query = (
        "SELECT name FROM sqlite_master WHERE name LIKE 'hs_%'"
        if url.startswith("sqlite")
        else "SELECT relname FROM pg_class WHERE relname LIKE 'hs_%' OR relname LIKE 'ix_hs_%'"
    )
    # Not the readers: they refuse a database below head.
    engine = make_engine(resolve_url(url))
    try:
        async with engine.connect() as connection:
            return {row[0] for row in (await connection.exec_driver_sql(query)).all()}
    finally:
        await engine.dispose()


async def test_downgrade_removes_exactly_the_views_and_the_search_index(db_url: str) -> None:
    await upgrade(db_url, "0002")
    at_head = await _schema_names(db_url)
    await downgrade(db_url, "0001")
    added = {"hs_messages", "hs_session_summary"}
    if db_url.startswith("sqlite"):
        added |= {f"hs_items_fts{suffix}" for suffix in ("", "_data", "_idx", "_docsize")}
        added |= {"hs_items_fts_config"}
        added |= {f"hs_items_fts_{name}" for name in ("insert", "delete", "update", "pending")}
    else:
        added |= {"ix_hs_items_text_fts"}
    assert at_head - await _schema_names(db_url) == added
    await upgrade(db_url, "0002")
    assert await _schema_names(db_url) == at_head


async def test_prune_keeps_counters_so_sessions_continue(db_url: str, tmp_path: Path) -> None:
    await populate(db_url, tmp_path)
    calls: list[tuple[int, int | None]] = []
    result = await prune(db_url, keep_last_turns=1, progress=lambda d, t: calls.append((d, t)))
    assert (result.sessions, result.items, calls) == (0, 6, [(2, 2)])
    async with HistoryStore(db_url) as store:
        await store.session("support-42").add_items([{"role": "user", "content": "and now?"}])
    items, counters = await _records(db_url, "support-42")
    assert (len(items), counters) == (5, (5, 3, 9))
    rows = await show("support-42", db_url, last=2)
    assert [(row.seq, row.turn) for row in rows] == [(5, 2), (6, 2), (7, 2), (8, 2), (9, 3)]
    assert (await prune(db_url, keep_last_turns=0)).items == 2 + 5 + 2


async def test_progress_callbacks(sqlite_url: str, tmp_path: Path) -> None:
    path = await populate(sqlite_url, tmp_path)
    exported: list[tuple[int, int | None]] = []
    await export(io.StringIO(), sqlite_url, progress=lambda d, t: exported.append((d, t)))
    assert exported == [(4, 14), (12, 14), (14, 14)]
    imported: list[tuple[int, int | None]] = []
    await import_(path, sqlite_url, progress=lambda d, t: imported.append((d, t)))
    assert imported == [(n, 17) for n in range(1, 18)]


def test_progress_bar_draws_only_on_a_terminal() -> None:
    piped = io.StringIO()
    bar = ProgressBar("exporting", piped)
    bar(5, 10)
    bar.close()
    assert piped.getvalue() == ""
    primary, secondary = os.openpty()
    with os.fdopen(secondary, "w") as terminal:
        bar = ProgressBar("exporting", terminal)
        bar(5, 10)
        bar(5, 10)
        bar(10, 10)
        bar.close()
    drawn = os.read(primary, 4096).decode()
    os.close(primary)
    assert drawn == (
        "\rexporting [###############...............] 5/10\x1b[K"
        "\rexporting [##############################] 10/10\x1b[K\r\n"
    )
    assert ProgressBar("importing", io.StringIO()).render(7, None) == "importing 7"


def test_parse_age() -> None:
    assert [parse_age(text).total_seconds() for text in ("30d", "12h", "2w", "90m", "1.5s")] == [
        2_592_000,
        43_200,
        1_209_600,
        5_400,
        1.5,
    ]


def _pages(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        pages = int(connection.execute("PRAGMA page_count").fetchone()[0])
    connection.close()
    return pages


async def test_prune_gives_space_back_and_keeps_the_search_index_whole(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    url = f"sqlite+aiosqlite:///{path}"
    async with HistoryStore(url) as store:
        session = store.session("big")
        for turn in range(20):
            text_ = f"turn {turn} " + "lorem ipsum " * 300
            await session.add_items([{"role": "user", "content": text_}])
    before = _pages(path)
    result = await prune(url, keep_last_turns=1)
    assert (result.sessions, result.items) == (0, 19)
    assert _pages(path) < before // 2
    # VACUUM may renumber rowids; the FTS index was rebuilt to match them.
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO hs_items_fts(hs_items_fts) VALUES ('integrity-check')")
    connection.close()
    assert [(hit.seq, hit.turn) for hit in await search("lorem", url)] == [(20, 20)]
