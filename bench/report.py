"""The targets of issue 6, checked against a result, and the printed table."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .impls import OURS

Target = tuple[str, str, Callable[[dict[str, Any]], float], str, float]
"""(id, description, value getter, comparison ">=", "<=" or "<", threshold)."""


def _speedup(workload: str, other: str) -> Callable[[dict[str, Any]], float]:
    return lambda r: float(r[workload]["results"][other]["speedup_vs"])


def _w2_speedup(workload: str, other: str) -> Callable[[dict[str, Any]], float]:
    return lambda r: float(r[workload]["speedup_of_ours_at_mid_size"][other])


def _growth(workload: str) -> Callable[[dict[str, Any]], float]:
    return lambda r: float(r[workload]["latency_growth_largest_vs_smallest"][OURS])


def _loaded_errors(r: dict[str, Any]) -> float:
    loaded = r["W4"]["under_load"]
    return float(
        loaded["W1"]["errors_ours"]
        + loaded["W4"]["errors"][OURS]
        + loaded["W4"]["missing_items"][OURS]
        + r["W4"]["errors"][OURS]
        + r["W4"]["missing_items"][OURS]
    )


def _w5_ok(r: dict[str, Any]) -> float:
    got = r["W5"]["results"][OURS]
    ok = got["in_order"] and got["batches_contiguous"] and got["count"] == got["expected"]
    return float(ok and got["errors"] == 0)


def _w8_overhead(r: dict[str, Any]) -> float:
    return float(r["W8"]["results"][OURS]["overhead_ms_per_turn"])


def _w9_growth(dialect: str) -> Callable[[dict[str, Any]], float]:
    return lambda r: float(r["W9"][dialect]["growth_largest_vs_smallest"])


def _w9_overhead(r: dict[str, Any]) -> float:
    return float(r["W9"]["overhead"]["overhead_ms_per_turn"])


def _w9_tokens(r: dict[str, Any]) -> float:
    return float(r["W9"]["requests"]["max_tokens_vs_limit"])


def _w10(dialect: str, key: str) -> Callable[[dict[str, Any]], float]:
    return lambda r: float(r["W10"][dialect][key])


def _w10_memory(r: dict[str, Any]) -> float:
    return float(r["W10"]["sqlite"]["memory"]["growth_big_vs_small"])


TARGETS: list[Target] = [
    (
        "W1-vs-SQLiteSession",
        "W1 append items/s vs SQLiteSession",
        _speedup("W1", "SQLiteSession"),
        ">=",
        2.0,
    ),
    (
        "W1-vs-SQLAlchemySession",
        "W1 append items/s vs SQLAlchemySession",
        _speedup("W1", "SQLAlchemySession"),
        ">=",
        5.0,
    ),
    (
        "W4-vs-SQLiteSession",
        "W4 concurrent items/s vs SQLiteSession",
        _speedup("W4", "SQLiteSession"),
        ">=",
        2.0,
    ),
    (
        "W4-vs-SQLAlchemySession",
        "W4 concurrent items/s vs SQLAlchemySession",
        _speedup("W4", "SQLAlchemySession"),
        ">=",
        5.0,
    ),
    (
        "W1W4-errors",
        "W1+W4 errors/missing items (incl. under CPU burners)",
        _loaded_errors,
        "<=",
        0.0,
    ),
    ("W2-growth", "W2 latency at largest size / smallest size", _growth("W2"), "<=", 1.3),
    (
        "W2-vs-SQLiteSession",
        "W2 tail read at 10k vs SQLiteSession",
        _w2_speedup("W2", "SQLiteSession"),
        ">=",
        1.5,
    ),
    (
        "W3-vs-SQLiteSession",
        "W3 full read vs SQLiteSession",
        _speedup("W3", "SQLiteSession"),
        ">=",
        1.0,
    ),
    ("W5-verified", "W5 two processes: count, order, atomic batches, no errors", _w5_ok, ">=", 1.0),
    (
        "W6-vs-SQLiteSession",
        "W6 pop_item vs SQLiteSession",
        _speedup("W6", "SQLiteSession"),
        ">=",
        1.0,
    ),
    (
        "W7-W1-vs-SQLAlchemySession",
        "W7 PostgreSQL append vs SQLAlchemySession",
        _speedup("W7_W1", "SQLAlchemySession"),
        ">=",
        5.0,
    ),
    (
        "W7-W4-vs-SQLAlchemySession",
        "W7 PostgreSQL concurrent vs SQLAlchemySession",
        _speedup("W7_W4", "SQLAlchemySession"),
        ">=",
        5.0,
    ),
    (
        "W7-W2-growth",
        "W7 PostgreSQL tail latency largest/smallest size",
        _growth("W7_W2"),
        "<=",
        1.3,
    ),
    (
        "W8-overhead-ms",
        "W8 history_store overhead per Runner.run turn, hs_turns written (ms)",
        _w8_overhead,
        "<=",
        1.0,
    ),
    (
        "W9-window-growth",
        "W9 budgeted window() latency at largest / smallest history, SQLite",
        _w9_growth("sqlite"),
        "<=",
        1.3,
    ),
    (
        "W9-pg-window-growth",
        "W9 budgeted window() latency at largest / smallest history, PostgreSQL",
        _w9_growth("postgresql"),
        "<=",
        1.3,
    ),
    (
        "W9-budget-overhead-ms",
        "W9 budget's overhead per Runner.run turn over no budget (ms)",
        _w9_overhead,
        "<",
        0.5,
    ),
    (
        "W9-request-tokens-vs-budget",
        "W9 largest request of the long budgeted run, server-counted tokens / budget limit",
        _w9_tokens,
        "<=",
        1.0,
    ),
    (
        "W10-session-page-ms",
        "W10 viewer: slowest page of the 10k-item session, SQLite (ms)",
        _w10("sqlite", "session_page_worst_ms"),
        "<=",
        300.0,
    ),
    (
        "W10-sessions-page-ms",
        "W10 viewer: sessions page with 100k sessions, SQLite (ms)",
        _w10("sqlite", "sessions_page_worst_unfiltered_ms"),
        "<=",
        100.0,
    ),
    (
        "W10-pg-session-page-ms",
        "W10 viewer: slowest page of the 10k-item session, PostgreSQL (ms)",
        _w10("postgresql", "session_page_worst_ms"),
        "<=",
        300.0,
    ),
    (
        "W10-pg-sessions-page-ms",
        "W10 viewer: sessions page with 100k sessions, PostgreSQL (ms)",
        _w10("postgresql", "sessions_page_worst_unfiltered_ms"),
        "<=",
        100.0,
    ),
    (
        "W10-memory-flat",
        "W10 viewer: peak memory over every page of the 10k session / one page of 1k",
        _w10_memory,
        "<=",
        1.5,
    ),
]


def check_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target with its measured value and ``pass``; a skipped workload gives ``None``."""
    checked = []
    for target_id, text, getter, op, threshold in TARGETS:
        try:
            value: float | None = getter(result)
        except (KeyError, TypeError):
            value = None
        ok = None
        if value is not None and not math.isnan(value):
            ok = {">=": value >= threshold, "<=": value <= threshold, "<": value < threshold}[op]
        checked.append(
            {
                "id": target_id,
                "what": text,
                "value": value,
                "op": op,
                "threshold": threshold,
                "pass": ok,
            }
        )
    return checked


def _fmt(value: Any, spec: str = ".2f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def _print_viewer(data: dict[str, Any], out: Callable[[str], None]) -> None:
    out(f"\nW10: {data.get('what', '')}")
    for dialect in ("sqlite", "postgresql"):
        if dialect not in data:
            continue
        got = data[dialect]
        for key, label in (("sessions_page_ms", "sessions page"), ("session_page_ms", "session")):
            cells = "  ".join(f"{name} {_fmt(ms, '.1f')}" for name, ms in got[key].items())
            out(f"  {dialect:<10} {label:<13} ms: {cells}")
        memory = got["memory"]
        out(
            f"  {dialect:<10} peak memory   MiB: one page of the small session "
            f"{_fmt(memory['small_page_bytes'] / 2**20)}, of the big one "
            f"{_fmt(memory['big_page_bytes'] / 2**20)}, any of its {memory['big_pages']} pages "
            f"{_fmt(memory['every_big_page_bytes'] / 2**20)}"
        )


def _print_budget(data: dict[str, Any], out: Callable[[str], None]) -> None:
    out(f"\nW9: {data.get('what', '')}")
    for dialect in ("sqlite", "postgresql"):
        if dialect not in data:
            continue
        got = data[dialect]
        cells = "  ".join(
            f"{size} items {_fmt(got['median_us'][str(size)], '.1f')} "
            f"({got['window'][str(size)]['items']} items, "
            f"{got['window'][str(size)]['tokens']} tokens)"
            for size in data["sizes"]
        )
        out(f"  {dialect:<10} window() µs: {cells}")
        out(f"  {dialect:<10} growth largest / smallest: {_fmt(got['growth_largest_vs_smallest'])}")
    overhead = data["overhead"]
    medians = overhead["median_ms_per_turn"]
    out(
        f"  Runner.run turn ms: no budget {_fmt(medians['no_budget'])}, budget "
        f"{_fmt(medians['budget'])}; overhead {_fmt(overhead['overhead_ms_per_turn'], '.3f')} ms "
        f"(same requests sent: {overhead['same_requests']})"
    )
    got = data["requests"]
    last, largest, free = got["at_last_turn"], got["largest"], got["unbudgeted_at_last_turn"]
    out(
        f"  {got['turns']} turns, budget {got['max_input_tokens']} tokens (limit {got['limit']}): "
        f"turn {last['turn']} sent {last['bytes']} bytes, {last['tokens']} tokens, "
        f"{last['messages']} messages; largest request {largest['bytes']} bytes (turn "
        f"{largest['turn']}); most tokens {got['max_tokens']}; rejected {got['rejected']}"
    )
    if free:
        out(
            f"  turn {last['turn']} without the budget, same history: {free['bytes']} bytes, "
            f"{free['tokens']} tokens, {free['messages']} messages"
        )
    out(
        f"  ms per budgeted turn: first tenth {_fmt(got['ms_per_turn_first_tenth'])}, last tenth "
        f"{_fmt(got['ms_per_turn_last_tenth'])}; calibration ratio "
        f"{_fmt(got['calibration_ratio'], '.3f')}"
    )
    samples = ", ".join(f"{row['turn']}: {row['bytes']}" for row in got["samples"])
    out(f"  request bytes by turn: {samples}")


def print_table(result: dict[str, Any], out: Callable[[str], None] = print) -> None:
    """Medians and ratios per workload, then the targets."""
    if "W9" in result:
        _print_budget(result["W9"], out)
    if "W10" in result:
        _print_viewer(result["W10"], out)
    for workload, data in result.items():
        if not isinstance(data, dict) or "results" not in data:
            continue
        out(f"\n{workload}: {data.get('what', '')}")
        for name, row in data["results"].items():
            cells = [f"  {name:<34}"]
            for key, label, spec in (
                ("median_us", "median µs/op", ".1f"),
                ("items_per_s", "items/s", ".0f"),
                ("speedup_vs", "ours x faster", ".2f"),
                ("median_ms_per_turn", "ms/turn", ".2f"),
                ("overhead_ms_per_turn", "overhead ms", ".2f"),
                ("peak_rss_mib", "peak RSS MiB", ".1f"),
                ("read_growth_mib", "read +MiB", ".1f"),
                ("count", "count", "d"),
                ("in_order", "in order", ""),
                ("errors", "errors", ""),
            ):
                if key in row:
                    cells.append(f"{label} {_fmt(row[key], spec)}")
            out("  ".join(cells))
    out("\nTargets:")
    for target in result.get("targets", []):
        verdict = {True: "PASS", False: "FALLS SHORT", None: "not run"}[target["pass"]]
        out(
            f"  [{verdict:>11}] {target['what']}: {_fmt(target['value'])} "
            f"(target {target['op']} {target['threshold']})"
        )
