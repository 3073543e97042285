"""``history-store`` commands run in-process (``cli.main``) against real databases: exact
output and exit code for each command, and one error path per command."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_support import ACTIVE, ACTIVE_TEXT, export_text, populate

from history_store import HistoryStore
from history_store.cli import main

Capture = pytest.CaptureFixture[str]


@pytest.fixture
def url(tmp_path: Path) -> str:
    """An SQLite file holding the fixture sessions."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    asyncio.run(populate(database, tmp_path))
    return database


@pytest.fixture
def any_url(db_url: str, tmp_path: Path) -> str:
    """The fixture sessions on SQLite, then on PostgreSQL."""
    asyncio.run(populate(db_url, tmp_path))
    return db_url


def run(capsys: Capture, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


SESSIONS_TABLE = f"""\
SESSION     ITEMS  TURNS  CREATED              UPDATED              METADATA
sales-1     4      2      2025-02-01 10:00:00  2025-02-01 10:02:00  -
support-42  8      2      2026-01-10 09:00:00  {ACTIVE_TEXT}  {{"customer": "acme", "tier": "gold"}}
support-7   2      1      2025-01-01 08:00:00  2025-01-01 08:10:00  {{"customer": "globex"}}
"""


def test_sessions_table(any_url: str, capsys: Capture) -> None:
    assert run(capsys, "--url", any_url, "sessions") == (0, SESSIONS_TABLE, "")


def test_sessions_pages_with_a_cursor(url: str, capsys: Capture) -> None:
    lines = SESSIONS_TABLE.splitlines()
    code, out, _ = run(capsys, "sessions", "--url", url, "--limit", "2")
    assert (code, out) == (0, "\n".join(lines[:3]) + "\nnext page: --after support-42\n")
    code, out, _ = run(capsys, "sessions", "--url", url, "--limit", "2", "--after", "support-42")
    header = "SESSION    ITEMS  TURNS  CREATED              UPDATED              METADATA"
    row = "support-7  2      1      2025-01-01 08:00:00  2025-01-01 08:10:00  "
    row += '{"customer": "globex"}'
    assert (code, out) == (0, f"{header}\n{row}\n")


def test_sessions_filters(any_url: str, capsys: Capture) -> None:
    def ids(*options: str) -> list[str]:
        code, out, _ = run(capsys, "--url", any_url, "--json", "sessions", *options)
        assert code == 0
        return [s["session_id"] for s in json.loads(out)["sessions"]]

    assert ids("--prefix", "support-") == ["support-42", "support-7"]
    assert ids("--prefix", "SUPPORT") == []
    assert ids("--meta", "customer") == ["support-42", "support-7"]
    assert ids("--meta", "tier") == ["support-42"]
    assert ids("--idle-days", "30") == ["sales-1", "support-7"]
    assert ids("--prefix", "support", "--idle-days", "30") == ["support-7"]


def test_sessions_json(url: str, capsys: Capture) -> None:
    code, out, err = run(capsys, "--url", url, "sessions", "--json", "--limit", "1")
    assert (code, err, out.count("\n")) == (0, "", 1)
    assert json.loads(out) == {
        "sessions": [
            {
                "session_id": "sales-1",
                "items": 4,
                "turns": 2,
                "created_at": "2025-02-01T10:00:00+00:00",
                "updated_at": "2025-02-01T10:02:00+00:00",
                "metadata": None,
            }
        ],
        "next_after": "sales-1",
    }


def test_sessions_on_a_missing_database_creates_nothing(tmp_path: Path, capsys: Capture) -> None:
    missing = tmp_path / "missing.db"
    code, out, err = run(capsys, "--url", f"sqlite:///{missing}", "sessions")
    assert (code, out) == (1, "")
    assert err == (
        f"error: no database at sqlite+aiosqlite:///{missing}; check the path or --url "
        "(read-only commands never create a database)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_show_last_turn(any_url: str, capsys: Capture) -> None:
    assert run(capsys, "--url", any_url, "show", "support-42", "--last", "1") == (
        0,
        "SEQ  TURN  ROLE       TYPE                  TEXT\n"
        "5    2     user       message               How long will the refund take?\n"
        '6    2     -          function_call         {"order": 7}\n'
        "7    2     -          function_call_output  3 days\n"
        "8    2     assistant  message               Your refund arrives in 3 days.\n"
        "\n"
        "TURN  STATUS     AGENT    MODEL   REQUESTS  INPUT  OUTPUT  TOTAL\n"
        "2     completed  support  gpt-4o  2         1300   40      1340\n",
        "",
    )


def test_show_one_turn_as_json(url: str, capsys: Capture) -> None:
    code, out, _ = run(capsys, "--url", url, "--json", "show", "sales-1", "--turn", "2")
    assert code == 0
    assert json.loads(out) == {
        "session_id": "sales-1",
        "items": [
            {
                "seq": 3,
                "turn": 2,
                "role": "user",
                "item_type": "message",
                "text": "Great, thanks",
                "created_at": "2025-02-01T10:00:00+00:00",
                "item": {"role": "user", "content": "Great, thanks"},
                "status": "completed",
            },
            {
                "seq": 4,
                "turn": 2,
                "role": "assistant",
                "item_type": "message",
                "text": "You are welcome!",
                "created_at": "2025-02-01T10:00:00+00:00",
                "item": {
                    "id": "__fake_id__",
                    "content": [
                        {"annotations": [], "text": "You are welcome!", "type": "output_text"}
                    ],
                    "role": "assistant",
                    "status": "completed",
                    "type": "message",
                },
                "status": "completed",
            },
        ],
        "turns": [
            {
                "turn": 2,
                "status": "completed",
                "agent": "sales",
                "model": "gpt-4o-mini",
                "requests": 1,
                "input_tokens": 160,
                "output_tokens": 10,
                "total_tokens": 170,
                "started_at": "2025-02-01T10:02:00+00:00",
                "finished_at": "2025-02-01T10:02:00+00:00",
            }
        ],
    }


def test_show_unknown_session(url: str, capsys: Capture) -> None:
    assert run(capsys, "--url", url, "show", "nope") == (
        1,
        "",
        "error: no session 'nope' in this database; list them with: history-store sessions\n",
    )


def test_search(any_url: str, capsys: Capture) -> None:
    assert run(capsys, "--url", any_url, "search", "REFUND") == (
        0,
        "SESSION     SEQ  TURN  ROLE       TEXT\n"
        "support-42  1    1     user       My order 7 has not arrived, I want a refund\n"
        "support-42  4    1     assistant  Sorry! Order 7 was lost. I have started a refund.\n"
        "support-42  5    2     user       How long will the refund take?\n"
        "support-42  8    2     assistant  Your refund arrives in 3 days.\n",
        "",
    )
    code, out, _ = run(capsys, "--url", any_url, "--json", "search", "où facture")
    assert code == 0
    assert json.loads(out) == {
        "query": "où facture",
        "hits": [
            {
                "session_id": "support-7",
                "seq": 1,
                "turn": 1,
                "role": "user",
                "item_type": "message",
                "text": "Bonjour, où est ma facture ?",
            }
        ],
    }
    assert run(capsys, "--url", any_url, "search", "refund", "--session", "sales-1") == (
        0,
        "no matches\n",
        "",
    )


def test_search_with_no_words(url: str, capsys: Capture) -> None:
    assert run(capsys, "--url", url, "search", "  ") == (
        1,
        "",
        "error: search text is empty; give at least one word\n",
    )


@pytest.fixture
def reader_url(any_url: str, as_reader: Callable[[str], str]) -> str:
    """``any_url`` as `sql` connects to it: on PostgreSQL as a reader role."""
    return as_reader(any_url)


def test_sql(reader_url: str, capsys: Capture) -> None:
    any_url = reader_url
    query = "SELECT session_id, items FROM hs_session_summary ORDER BY session_id"
    assert run(capsys, "--url", any_url, "sql", query) == (
        0,
        "session_id  items\nsales-1     4\nsupport-42  8\nsupport-7   2\n(3 rows)\n",
        "",
    )
    code, out, _ = run(capsys, "--url", any_url, "sql", "--json", "SELECT 1 AS one, 'é' AS e")
    assert (code, out) == (0, '{"columns": ["one", "e"], "rows": [[1, "é"]], "truncated": false}\n')


def test_sql_shows_timestamps_as_every_table_does(
    any_url: str, as_reader: Callable[[str], str], capsys: Capture
) -> None:
    """SQLite hands timestamps back as text with microseconds, PostgreSQL as timestamps:
    both print to the second in UTC, as `sessions` prints them."""
    query = (
        "SELECT session_id, first_activity, last_activity FROM hs_session_summary "
        "WHERE session_id <> 'support-42' ORDER BY session_id"
    )
    assert run(capsys, "--url", as_reader(any_url), "sql", query) == (
        0,
        "session_id  first_activity       last_activity\n"
        "sales-1     2025-02-01 10:00:00  2025-02-01 10:02:00\n"
        "support-7   2025-01-01 08:00:00  2025-01-01 08:10:00\n"
        "(2 rows)\n",
        "",
    )
    code, out, _ = run(capsys, "--url", any_url, "sessions", "--prefix", "support-7")
    assert (code, out.splitlines()[1].split()[3:7]) == (
        0,
        ["2025-01-01", "08:00:00", "2025-01-01", "08:10:00"],
    )


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM hs_items",
        "UPDATE hs_sessions SET item_count = 0",
        "CREATE TABLE evil (x integer)",
        "DROP VIEW hs_messages",
    ],
)
def test_sql_refuses_writes(reader_url: str, capsys: Capture, statement: str) -> None:
    any_url = reader_url
    code, out, err = run(capsys, "--url", any_url, "sql", statement)
    assert (code, out) == (1, "")
    assert err.startswith("error: refused: `sql` runs read-only queries (SELECT, WITH, EXPLAIN")
    if any_url.startswith("sqlite"):
        # Refused by SQLite itself: the file is opened read-only.
        assert err.endswith("Use delete/prune/import to change data.\n")
    else:
        # Refused before reaching the server: only query statements are sent.
        keyword = statement.split()[0]
        assert err.endswith(f"), not {keyword}. Use psql for anything else.\n")
    code, out, _ = run(capsys, "--url", any_url, "--json", "sql", "SELECT count(*) FROM hs_items")
    assert json.loads(out)["rows"] == [[14]]


def test_sql_write_hidden_in_a_query_fails_in_the_read_only_transaction(
    pg_url: str, tmp_path: Path, capsys: Capture, as_reader: Callable[[str], str]
) -> None:
    asyncio.run(populate(pg_url, tmp_path))
    pg_url = as_reader(pg_url)
    statement = "WITH gone AS (DELETE FROM hs_items RETURNING 1) SELECT count(*) FROM gone"
    assert run(capsys, "--url", pg_url, "sql", statement) == (
        1,
        "",
        "error: refused: `sql` runs read-only queries (SELECT, WITH, EXPLAIN); "
        "cannot execute SELECT in a read-only transaction. "
        "Use delete/prune/import to change data.\n",
    )
    code, out, _ = run(capsys, "--url", pg_url, "--json", "sql", "SELECT count(*) FROM hs_items")
    assert (code, json.loads(out)["rows"]) == (0, [[14]])


def test_sql_bad_sql(url: str, capsys: Capture) -> None:
    code, out, err = run(capsys, "--url", url, "sql", "SELEC nothing")
    assert (code, out) == (1, "")
    assert err == (
        "error: the query failed: near \"SELEC\": syntax error. Check the SQL: 'SELEC nothing'\n"
    )


def test_sql_cannot_attach_or_change_pragmas(url: str, tmp_path: Path, capsys: Capture) -> None:
    attached = tmp_path / "new.db"
    for statement in (f"ATTACH '{attached}' AS other", "PRAGMA query_only = OFF"):
        code, _, err = run(capsys, "--url", url, "sql", statement)
        assert (code, "not authorized" in err) == (1, True)
    code, _, err = run(capsys, "--url", url, "sql", f"VACUUM INTO '{attached}'")
    assert (code, err) == (
        1,
        "error: the query failed: cannot VACUUM from within a transaction. "
        f"Check the SQL: \"VACUUM INTO '{attached}'\"\n",
    )
    assert not attached.exists()
    # Reading PRAGMAs stay allowed, with or without an argument.
    code, out, _ = run(capsys, "--url", url, "--json", "sql", "PRAGMA table_info(hs_sessions)")
    assert (code, json.loads(out)["rows"][0][:3]) == (0, [0, "session_id", "VARCHAR(1024)"])
    code, out, _ = run(capsys, "--url", url, "sql", "PRAGMA query_only")
    assert (code, out) == (0, "query_only\n1\n(1 row)\n")


def _page_bytes(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        size = connection.execute("PRAGMA page_size").fetchone()[0]
    connection.close()
    return int(pages * size)


def test_stats(url: str, tmp_path: Path, capsys: Capture) -> None:
    size = _page_bytes(tmp_path / "history.db")
    assert run(capsys, "--url", url, "stats") == (
        0,
        "STAT                                VALUE\n"
        "sessions                            3\n"
        "items                               14\n"
        "turns                               5\n"
        "first activity                      2025-01-01 08:00:00\n"
        f"last activity                       {ACTIVE_TEXT}\n"
        f"database bytes                      {size}\n"
        "items of type function_call         2\n"
        "items of type function_call_output  2\n"
        "items of type message               10\n"
        "turns completed                     4\n"
        "model requests                      6\n"
        "input tokens                        2480\n"
        "output tokens                       130\n"
        "total tokens                        2610\n",
        "",
    )
    code, out, _ = run(capsys, "--url", url, "stats", "--json")
    assert code == 0
    assert json.loads(out) == {
        "sessions": 3,
        "items": 14,
        "turns": 5,
        "first_activity": "2025-01-01T08:00:00+00:00",
        "last_activity": ACTIVE.isoformat(),
        "database_bytes": size,
        "items_by_type": {"function_call": 2, "function_call_output": 2, "message": 10},
        "turns_by_status": {"completed": 4},
        "requests": 6,
        "input_tokens": 2480,
        "output_tokens": 130,
        "total_tokens": 2610,
    }


def test_stats_on_a_missing_database(tmp_path: Path, capsys: Capture) -> None:
    code, out, err = run(capsys, "--url", f"sqlite:///{tmp_path / 'none.db'}", "stats")
    assert (code, out, err.startswith("error: no database at ")) == (1, "", True)


def test_export_writes_the_fixture_back_exactly(any_url: str, capsys: Capture) -> None:
    assert run(capsys, "--url", any_url, "export") == (
        0,
        export_text(),
        "exported 3 sessions, 14 items\n",
    )


def test_export_some_sessions_to_a_file(url: str, tmp_path: Path, capsys: Capture) -> None:
    target = tmp_path / "out.jsonl"
    code, out, err = run(capsys, "--url", url, "export", "support-7", "-o", str(target))
    assert (code, out, err) == (0, "", "exported 1 session, 2 items\n")
    lines = export_text().splitlines(keepends=True)
    assert target.read_text(encoding="utf-8") == lines[0] + "".join(lines[-3:])


def test_export_unknown_session(url: str, tmp_path: Path, capsys: Capture) -> None:
    error = (
        "error: no session 'nope' in this database; nothing was exported. "
        "List sessions with: history-store sessions\n"
    )
    assert run(capsys, "--url", url, "export", "support-7", "nope") == (1, "", error)
    target = tmp_path / "out.jsonl"
    assert run(capsys, "--url", url, "export", "nope", "-o", str(target)) == (1, "", error)
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith("out")] == []


def test_import_twice_is_idempotent(db_url: str, tmp_path: Path, capsys: Capture) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(export_text(), encoding="utf-8")
    if db_url.startswith("postgresql"):
        assert run(capsys, "--url", db_url, "db", "upgrade")[0] == 0
    # The summary counts the rows inserted: none the second time.
    for items in (14, 0):
        assert run(capsys, "--url", db_url, "import", str(source)) == (
            0,
            f"imported 3 sessions, {items} items\n",
            "",
        )
    assert run(capsys, "--url", db_url, "export")[1] == export_text()
    code, out, _ = run(capsys, "--url", db_url, "--json", "import", str(source))
    assert (code, json.loads(out)) == (0, {"sessions": 3, "items": 0, "skipped": 0})


def test_import_refuses_an_unknown_version(tmp_path: Path, capsys: Capture) -> None:
    source = tmp_path / "future.jsonl"
    source.write_text('{"format": "history_store.export", "version": 2}\n', encoding="utf-8")
    code, out, err = run(capsys, "--url", f"sqlite:///{tmp_path / 'h.db'}", "import", str(source))
    assert (code, out) == (1, "")
    assert err == (
        "error: export format version 2 is not supported: this history_store reads version 1. "
        "Upgrade history_store to import this file; nothing was imported.\n"
    )


def test_import_unreadable_files(tmp_path: Path, capsys: Capture) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    missing = tmp_path / "missing.jsonl"
    assert run(capsys, "--url", url, "import", str(missing)) == (
        1,
        "",
        f"error: cannot read the export file '{missing}': No such file or directory; "
        "check the path\n",
    )
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(export_text().encode("utf-8").replace("où".encode(), "où".encode("latin-1")))
    assert run(capsys, "--url", url, "import", str(latin1)) == (
        1,
        "",
        "error: line 1: the file is not UTF-8 text here or below (invalid start byte). "
        "Nothing of this session was imported; sessions before it were. "
        "Fix the file and import it again (import is idempotent).\n",
    )


def test_delete(any_url: str, capsys: Capture) -> None:
    assert run(capsys, "--url", any_url, "delete", "support-7") == (
        0,
        "deleted 1 session, 2 items\n",
        "",
    )
    code, out, _ = run(capsys, "--url", any_url, "sessions")
    assert code == 0
    assert out == "".join(
        line + "\n" for line in SESSIONS_TABLE.splitlines() if not line.startswith("support-7")
    )
    assert run(capsys, "--url", any_url, "delete", "support-7") == (
        1,
        "",
        "error: no session 'support-7' in this database; nothing was deleted. "
        "List sessions with: history-store sessions\n",
    )


def test_delete_on_a_missing_database_creates_nothing(tmp_path: Path, capsys: Capture) -> None:
    code, _, err = run(capsys, "--url", f"sqlite:///{tmp_path / 'none.db'}", "delete", "x")
    assert (code, err.startswith("error: no database at ")) == (1, True)
    assert list(tmp_path.iterdir()) == []


def test_prune_older_than(any_url: str, capsys: Capture) -> None:
    args = ("--url", any_url, "prune", "--older-than", "30d")
    assert run(capsys, *args, "--dry-run") == (0, "would delete 2 sessions, 6 items\n", "")
    assert run(capsys, *args) == (0, "deleted 2 sessions, 6 items\n", "")
    assert run(capsys, *args) == (0, "deleted 0 sessions, 0 items\n", "")
    code, out, _ = run(capsys, "--url", any_url, "--json", "sessions")
    assert (code, [s["session_id"] for s in json.loads(out)["sessions"]]) == (0, ["support-42"])


def test_prune_keep_last_turns(
    any_url: str, capsys: Capture, as_reader: Callable[[str], str]
) -> None:
    args = ("--url", any_url, "prune", "--keep-last-turns", "1")
    assert run(capsys, *args, "--dry-run", "--json") == (
        0,
        '{"sessions": 0, "items": 6, "dry_run": true}\n',
        "",
    )
    assert run(capsys, *args) == (0, "deleted 0 sessions, 6 items\n", "")
    query = "SELECT session_id, items, turns FROM hs_session_summary ORDER BY session_id"
    assert run(capsys, "--url", as_reader(any_url), "sql", query)[1] == (
        "session_id  items  turns\n"
        "sales-1     2      2\n"
        "support-42  4      2\n"
        "support-7   2      1\n"
        "(3 rows)\n"
    )
    assert run(capsys, "--url", any_url, "search", "Norway") == (0, "no matches\n", "")


def test_sessions_and_stats_count_the_turns_left_after_prune(any_url: str, capsys: Capture) -> None:
    assert run(capsys, "--url", any_url, "prune", "--keep-last-turns", "1")[0] == 0
    code, out, _ = run(capsys, "--url", any_url, "sessions")
    assert code == 0
    assert [line.split()[:3] for line in out.splitlines()] == [
        ["SESSION", "ITEMS", "TURNS"],
        ["sales-1", "2", "1"],
        ["support-42", "4", "1"],
        ["support-7", "2", "1"],
    ]
    code, out, _ = run(capsys, "--url", any_url, "--json", "stats")
    assert (code, json.loads(out)["items"], json.loads(out)["turns"]) == (0, 8, 3)

    async def next_turn() -> None:
        async with HistoryStore(any_url) as store:
            await store.session("sales-1").add_items([{"role": "user", "content": "More?"}])

    asyncio.run(next_turn())
    # The counter kept growing: the new turn is number 3, not 2 again.
    code, out, _ = run(capsys, "--url", any_url, "--json", "show", "sales-1")
    assert [(item["seq"], item["turn"]) for item in json.loads(out)["items"]] == [
        (3, 2),
        (4, 2),
        (5, 3),
    ]
    code, out, _ = run(capsys, "--url", any_url, "--json", "sessions", "--prefix", "sales")
    assert [(s["items"], s["turns"]) for s in json.loads(out)["sessions"]] == [(3, 2)]


def test_prune_only_the_sessions_named(any_url: str, capsys: Capture) -> None:
    def items() -> dict[str, int]:
        code, out, _ = run(capsys, "--url", any_url, "--json", "sessions")
        assert code == 0
        return {s["session_id"]: s["items"] for s in json.loads(out)["sessions"]}

    args = ("--url", any_url, "prune", "--keep-last-turns", "1", "--session", "support-42")
    assert run(capsys, *args, "--dry-run") == (0, "would delete 0 sessions, 4 items\n", "")
    assert run(capsys, *args) == (0, "deleted 0 sessions, 4 items\n", "")
    assert items() == {"sales-1": 4, "support-42": 4, "support-7": 2}
    # Both idle sessions are older than 30 days; only the one named goes.
    args = ("--url", any_url, "prune", "--older-than", "30d", "--session", "sales-1")
    assert run(capsys, *args, "--session", "support-42") == (0, "deleted 1 session, 4 items\n", "")
    assert items() == {"support-42": 4, "support-7": 2}
    assert run(capsys, "--url", any_url, "prune", "--older-than", "1s", "--session", "nope") == (
        1,
        "",
        "error: no session 'nope' in this database; nothing was pruned. "
        "List sessions with: history-store sessions\n",
    )
    assert items() == {"support-42": 4, "support-7": 2}


def test_prune_bad_age(url: str, capsys: Capture) -> None:
    assert run(capsys, "--url", url, "prune", "--older-than", "a month") == (
        1,
        "",
        "error: cannot read the age 'a month': use a number and a unit, e.g. 30d, 12h, 2w, 90m\n",
    )


def test_prune_needs_one_mode(url: str, capsys: Capture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--url", url, "prune"])
    assert exit_info.value.code == 2
    assert "one of the arguments --older-than --keep-last-turns is required" in (
        capsys.readouterr().err
    )


def test_meta_prints_and_merges(any_url: str, capsys: Capture) -> None:
    assert run(capsys, "--url", any_url, "meta", "support-42") == (
        0,
        "KEY       VALUE\ncustomer  acme\ntier      gold\n",
        "",
    )
    pairs = ["tier=platinum", "seats=12", 'code="007"', "vip=true", "note=a b", "gone=null"]
    assert run(capsys, "--url", any_url, "--json", "meta", "support-42", *pairs) == (
        0,
        '{"session_id": "support-42", "metadata": {"customer": "acme", "tier": "platinum", '
        '"seats": 12, "code": "007", "vip": true, "note": "a b", "gone": null}}\n',
        "",
    )
    assert run(capsys, "--url", any_url, "meta", "sales-1") == (0, "no metadata\n", "")
    assert run(capsys, "--url", any_url, "meta", "sales-1", "owner=ada")[1] == (
        "KEY    VALUE\nowner  ada\n"
    )
    assert run(capsys, "--url", any_url, "meta", "nope", "a=1") == (
        1,
        "",
        "error: no session 'nope' in this database; list them with: history-store sessions\n",
    )
    code, out, _ = run(capsys, "--url", any_url, "--json", "sessions")
    assert (code, "nope" in out) == (0, False)  # a mistyped id creates nothing


def test_sessions_filter_on_a_metadata_value(any_url: str, capsys: Capture) -> None:
    hostile = 'it\'s "quoted"; DROP TABLE hs_items; --'
    assert run(capsys, "--url", any_url, "meta", "sales-1", "seats=12", f"{hostile}=1.0")[0] == 0
    assert run(capsys, "--url", any_url, "meta", "support-7", 'seats="12"', "trial=false")[0] == 0

    def ids(meta: str) -> list[str]:
        code, out, _ = run(capsys, "--url", any_url, "--json", "sessions", "--meta", meta)
        assert code == 0
        return [s["session_id"] for s in json.loads(out)["sessions"]]

    assert ids("customer=acme") == ["support-42"]
    assert ids('customer="globex"') == ["support-7"]
    assert ids("seats=12") == ["sales-1"]  # the number, not the string "12"
    assert ids('seats="12"') == ["support-7"]
    assert ids("seats=12.0") == ["sales-1"]
    assert ids("trial=false") == ["support-7"]
    assert ids("trial=null") == []
    assert ids(f"{hostile}=1") == ["sales-1"]
    assert ids("seats") == ["sales-1", "support-7"]
    assert run(capsys, "--url", any_url, "sessions", "--meta", "tags=[1]") == (
        1,
        "",
        "error: a metadata filter compares a string, number, true, false or null, not [1]\n",
    )
