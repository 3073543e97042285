"""A small, fully known history database for the CLI, inspection and schema-doc tests.

Three sessions with fixed timestamps (``support-42`` is active now, the other two idle for
more than a year), written as an export file and imported, so every value is known exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from history_store.schema import upgrade
from history_store.tools.transfer import import_

PROGRAM = str(Path(sys.executable).with_name("history-store"))
"""The installed entry point, as a user runs it."""

ACTIVE = datetime.now(timezone.utc).replace(microsecond=0)
ACTIVE_TEXT = ACTIVE.strftime("%Y-%m-%d %H:%M:%S")


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    # As the SDK stores a Chat Completions reply.
    return {
        "id": "__fake_id__",
        "content": [{"annotations": [], "text": text, "type": "output_text"}],
        "role": "assistant",
        "status": "completed",
        "type": "message",
    }


def _call(call_id: str, name: str) -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": '{"order": 7}'}


def _output(call_id: str, output: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


# session id -> (created, updated, metadata, [(turn, item), ...])
SESSIONS: dict[str, tuple[str, str, Any, list[tuple[int, dict[str, Any]]]]] = {
    "sales-1": (
        "2025-02-01T10:00:00+00:00",
        "2025-02-01T10:02:00+00:00",
        None,
        [
            (1, user("Do you ship to Norway?")),
            (1, assistant("Yes, we ship to Norway.")),
            (2, user("Great, thanks")),
            (2, assistant("You are welcome!")),
        ],
    ),
    "support-42": (
        "2026-01-10T09:00:00+00:00",
        ACTIVE.isoformat(),
        {"customer": "acme", "tier": "gold"},
        [
            (1, user("My order 7 has not arrived, I want a refund")),
            (1, _call("c1", "lookup_order")),
            (1, _output("c1", "status: lost in transit")),
            (1, assistant("Sorry! Order 7 was lost. I have started a refund.")),
            (2, user("How long will the refund take?")),
            (2, _call("c2", "refund_eta")),
            (2, _output("c2", "3 days")),
            (2, assistant("Your refund arrives in 3 days.")),
        ],
    ),
    "support-7": (
        "2025-01-01T08:00:00+00:00",
        "2025-01-01T08:10:00+00:00",
        {"customer": "globex"},
        [
            (1, user("Bonjour, où est ma facture ?")),
            (1, assistant("Votre facture est dans votre espace client.")),
        ],
    ),
}


def export_text() -> str:
    """The fixture as an export file (format version 1), its turns' records included."""
    lines: list[Any] = [{"format": "history_store.export", "version": 1}]
    for session_id, (created, updated, metadata, items) in SESSIONS.items():
        header: dict[str, Any] = {
            "session_id": session_id,
            "created_at": created,
            "updated_at": updated,
            "metadata": metadata,
            "items": len(items),
            "turns": max(turn for turn, _ in items),
            "last_seq": len(items),
        }
        records = [_turn_record(row) for row in TURNS if row[0] == session_id]
        if records:
            header["turn_records"] = records
        lines.append({"session": header})
        for seq, (turn, item) in enumerate(items, start=1):
            lines.append({"seq": seq, "turn": turn, "created_at": created, "item": item})
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)


# (session, turn, status, agent, model, requests, input, output, total, finished_at);
# support-7's only turn has no row, as a turn stored by plain agents.Runner. support-42 ran
# with a token budget: its estimates (ESTIMATES) and windows (from seq 1) are recorded.
TURNS: list[tuple[Any, ...]] = [
    ("sales-1", 1, "completed", "sales", "gpt-4o-mini", 1, 120, 20, 140, "2025-02-01T10:00:05"),
    ("sales-1", 2, "completed", "sales", "gpt-4o-mini", 1, 160, 10, 170, "2025-02-01T10:02:00"),
    ("support-42", 1, "completed", "support", "gpt-4o", 2, 900, 60, 960, "2026-01-10T09:00:09"),
    ("support-42", 2, "completed", "support", "gpt-4o", 2, 1300, 40, 1340, ACTIVE.isoformat()),
]


ESTIMATES = {("support-42", 1): 800, ("support-42", 2): 1000}


def _turn_record(row: tuple[Any, ...]) -> dict[str, Any]:
    """A ``TURNS`` row as an export file's turn record (every ``hs_turns`` column)."""
    session_id, turn, status, agent, model, requests, tokens_in, tokens_out, total, finished = row
    estimate = ESTIMATES.get((session_id, turn))
    stamp = datetime.fromisoformat(finished).replace(tzinfo=timezone.utc).isoformat()
    return {
        "turn": turn,
        "status": status,
        "agent": agent,
        "model": model,
        "requests": requests,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "total_tokens": total,
        "started_at": stamp,
        "finished_at": stamp,
        "estimated_input_tokens": estimate,
        "window_first_seq": 1 if estimate is not None else None,
    }


async def populate(url: str, directory: Path) -> Path:
    """Write the fixture file into ``directory`` and import it into ``url`` (schema upgraded
    first, as a deploy would on PostgreSQL), the turns' usage with it; returns the file."""
    await upgrade(url)
    path = directory / "fixture.jsonl"
    path.write_text(export_text(), encoding="utf-8")
    await import_(path, url)
    return path


def run_program(
    *argv: str, stdin: str = "", env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``history-store ARGV...`` in a subprocess (the installed entry point), output captured."""
    return subprocess.run(
        [PROGRAM, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
        cwd=cwd,
    )
