"""The benchmark suite runs end to end (tiny sizes) and reports every workload and implementation.

No timing is asserted: the numbers are only checked to exist and to be well-formed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = "history_store"
SDK_SESSIONS = (
    OURS,
    "SQLiteSession",
    "AsyncSQLiteSession",
    "SQLAlchemySession",
    "AdvancedSQLiteSession",
)
SQLITE_IMPLS = (*SDK_SESSIONS, "raw_sqlite3")
PG_IMPLS = (OURS, "SQLAlchemySession", "raw_asyncpg")
TARGET_IDS = [
    "W1-vs-SQLiteSession",
    "W1-vs-SQLAlchemySession",
    "W4-vs-SQLiteSession",
    "W4-vs-SQLAlchemySession",
    "W1W4-errors",
    "W2-growth",
    "W2-vs-SQLiteSession",
    "W3-vs-SQLiteSession",
    "W5-verified",
    "W6-vs-SQLiteSession",
    "W7-W1-vs-SQLAlchemySession",
    "W7-W4-vs-SQLAlchemySession",
    "W7-W2-growth",
    "W8-overhead-ms",
    "W9-window-growth",
    "W9-pg-window-growth",
    "W9-budget-overhead-ms",
    "W9-request-tokens-vs-budget",
    "W10-session-page-ms",
    "W10-sessions-page-ms",
    "W10-pg-session-page-ms",
    "W10-pg-sessions-page-ms",
    "W10-memory-flat",
]


def test_tiny_run_reports_every_workload_and_implementation(pg_url: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    completed = subprocess.run(
        [
            *(sys.executable, "-m", "bench", "--profile", "tiny", "--json", str(out)),
            *("--pg-url", pg_url, "--workdir", str(tmp_path)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Targets:" in completed.stdout
    result = json.loads(out.read_text())

    for workload in ("W1", "W3", "W4", "W6"):
        assert set(result[workload]["results"]) == set(SQLITE_IMPLS), workload
    w2_keys = {f"{name}@{size}" for name in SQLITE_IMPLS for size in (50, 200)}
    assert set(result["W2"]["results"]) == w2_keys
    assert set(result["W5"]["results"]) == set(SQLITE_IMPLS)
    for part in ("W7_W1", "W7_W4"):
        assert set(result[part]["results"]) == set(PG_IMPLS), part
    assert set(result["W7_W2"]["results"]) == {f"{n}@{s}" for n in PG_IMPLS for s in (50, 200)}
    assert result["W7_W1"]["stored_ok"] == {name: True for name in PG_IMPLS}
    assert result["W7_W4"]["missing_items"] == {name: 0 for name in PG_IMPLS}
    assert result["W7_W4"]["errors"] == {name: 0 for name in PG_IMPLS}
    assert set(result["W8"]["results"]) == {"no_session", "sdk_floor", *SDK_SESSIONS}

    # Every write was stored and verified: counts and order are exact, not timed.
    assert result["W1"]["stored_ok"] == {name: True for name in SQLITE_IMPLS}
    assert result["W4"]["missing_items"] == {name: 0 for name in SQLITE_IMPLS}
    assert result["W4"]["errors"][OURS] == 0
    for name in SQLITE_IMPLS:
        w5 = result["W5"]["results"][name]
        assert (w5["count"], w5["expected"]) == (40, 40), name
        assert w5["in_order"] is True, name
        assert result["W3"]["results"][name]["items"] == 200, name
    assert result["W5"]["results"][OURS]["batches_contiguous"] is True
    assert result["W6"]["pops_returning_none"] == {}
    for name in SQLITE_IMPLS:
        assert result["W1"]["results"][name]["chunks"] == 3
        assert result["W1"]["results"][name]["median_us"] > 0

    w9 = result["W9"]
    for dialect in ("sqlite", "postgresql"):
        assert set(w9[dialect]["median_us"]) == {"50", "200"}, dialect
        assert all(us > 0 for us in w9[dialect]["median_us"].values()), dialect
        # The whole 50-item session fits the window's budget; of 200 items, the newest do.
        assert w9[dialect]["window"]["50"]["items"] == 50, dialect
        assert 50 < w9[dialect]["window"]["200"]["items"] < 200, dialect
    assert w9["overhead"]["same_requests"] is True
    requests = w9["requests"]
    assert requests["turns"] == 12 and requests["at_last_turn"]["turn"] == 12
    assert (requests["rejected"], requests["errors"]) == (0, {})
    assert 0 < requests["max_tokens"] <= requests["limit"]
    assert requests["unbudgeted_at_last_turn"]["bytes"] >= requests["at_last_turn"]["bytes"] > 0

    for dialect in ("sqlite", "postgresql"):
        w10 = result["W10"][dialect]
        assert set(w10["sessions_page_ms"]) == {
            "first",
            "middle",
            "idle_30_days",
            "metadata_value",
            "json_first",
        }
        assert all(ms > 0 for ms in w10["session_page_ms"].values()), dialect
        assert w10["memory"]["big_pages"] == 10, dialect  # 2,000 items, 200 a page

    assert [t["id"] for t in result["targets"]] == TARGET_IDS
    assert all(t["pass"] in (True, False) for t in result["targets"])
