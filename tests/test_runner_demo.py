"""``history-store demo`` runs offline and shows attach, refusal and the stored rows."""

from __future__ import annotations

import pytest

from history_store.tools.demo import run_demo


async def test_offline_demo_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    lines: list[str] = []
    await run_demo(lines.append)
    text = "\n".join(lines)
    # The system prompt counts as one message: each turn sees every earlier one.
    assert "assistant: reply 3: saw 6 messages; last user said: And what do I like?" in text
    assert "refused before any request: previous_response_id was passed, but agent " in text
    assert lines[-7:] == [
        "turn  seq  role       text",
        "   1    1  user       My name is Ada and I like chess.",
        "   1    2  assistant  reply 1: saw 2 messages; last user said: My name is Ada and I "
        "like che",
        "   2    3  user       What is my name?",
        "   2    4  assistant  reply 2: saw 4 messages; last user said: What is my name?",
        "   3    5  user       And what do I like?",
        "   3    6  assistant  reply 3: saw 6 messages; last user said: And what do I like?",
    ]
