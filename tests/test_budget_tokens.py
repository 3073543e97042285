"""Token counting: the estimate's rule, tiktoken's path and the fallback, and calibration
against a server that counts more than the client.

``default_counter`` depends on the process (is tiktoken importable, is its ``o200k_base`` file
cached, has LiteLLM pointed ``TIKTOKEN_CACHE_DIR`` at its own copy), so its paths run in fresh
interpreters with the environment each test sets. ``HTTPS_PROXY`` points at a closed port,
so tiktoken cannot download anything even on a machine with network.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from history_store import InvalidArgumentError
from history_store.budget.tokens import (
    IMAGE_TOKENS,
    ITEM_OVERHEAD_TOKENS,
    EstimateCounter,
    TokenCounter,
    calibrated,
    calibration_ratio,
)
from history_store.testing import StubModelServer

# The file name tiktoken caches o200k_base under: the SHA-1 of its download URL.
O200K_CACHE_NAME = "fb374d419588a4632f3f557e76b4b70aebbca790"

estimate = EstimateCounter()


def test_the_estimate_is_characters_over_four_rounded_up() -> None:
    assert [estimate.count_text("x" * n) for n in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]
    assert estimate.count_text("héllo ✓ 🎉") == 3  # characters, not bytes: 9 of them
    assert isinstance(estimate, TokenCounter)


@pytest.mark.parametrize(
    ("item", "text_tokens", "images"),
    [
        ({"role": "user", "content": "abcdefgh"}, 2, 0),
        ({"type": "message", "role": "user", "content": "abcd", "id": "x" * 400}, 1, 0),
        (
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "abcd"},
                    {"type": "input_image", "image_url": "data:image/png;base64," + "A" * 999},
                    {"type": "input_text", "text": "abcde"},
                ],
            },
            1 + 2,
            1,
        ),
        (
            {
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "abcdabcd", "annotations": []}],
            },
            2,
            0,
        ),
        (
            {
                "type": "function_call",
                "call_id": "call_" + "9" * 40,
                "name": "weather",
                "arguments": '{"city": "Paris"}',
            },
            2 + 5,
            0,
        ),
        ({"type": "function_call_output", "call_id": "c", "output": "sunny"}, 2, 0),
        (
            {
                "type": "function_call_output",
                "call_id": "c",
                "output": [{"type": "input_text", "text": "abcd"}, {"type": "input_image"}],
            },
            1,
            1,
        ),
        (
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": "abcdefgh"}],
                "encrypted_content": "E" * 800,
            },
            2,
            0,
        ),
        (  # Chat Completions shapes
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{}"},
                    }
                ],
            },
            1 + 1,
            0,
        ),
        ({"role": "tool", "tool_call_id": "call_1", "content": "abcde"}, 2, 0),
        ({"role": "assistant", "content": None, "refusal": "no"}, 1, 0),
        (
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]},
            0,
            1,
        ),
        ({"type": "custom_tool_call", "call_id": "c", "name": "sh", "input": "ls -la"}, 1 + 2, 0),
        ({"type": "item_reference", "id": "msg_1"}, 0, 0),
    ],
)
def test_an_item_counts_what_the_model_is_sent(
    item: dict[str, Any], text_tokens: int, images: int
) -> None:
    expected = ITEM_OVERHEAD_TOKENS + text_tokens + images * IMAGE_TOKENS
    assert estimate.count_item(item) == expected


def test_counting_never_raises_on_odd_json() -> None:
    odd: list[dict[str, Any]] = [
        {},
        {"content": 5},
        {"content": [None, 3, "bare", {"type": "input_text", "text": 7}]},
        {"tool_calls": "x", "summary": None, "output": {"a": 1}},
        {"tool_calls": [{"function": "f"}, 1]},
    ]
    assert [estimate.count_item(item) for item in odd] == [4, 4, 4 + 1, 4, 4]


# --- default_counter and tiktoken, in fresh interpreters --------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR", "CUSTOM_TIKTOKEN_CACHE_DIR"}
    }
    proxy = f"http://127.0.0.1:{closed_port()}"
    environment.update(HTTPS_PROXY=proxy, HTTP_PROXY=proxy, NO_PROXY="", **env)
    prelude = "import logging, sys\nlogging.basicConfig(level=logging.DEBUG, stream=sys.stderr)\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def budget_log_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("DEBUG:history_store:")]


PICK = """
from history_store.budget.tokens import default_counter
print(repr(default_counter()), repr(default_counter()))
"""


def test_without_tiktoken_the_default_is_the_estimate(tmp_path: Path) -> None:
    done = run_python("sys.modules['tiktoken'] = None  # import tiktoken fails\n" + PICK)
    assert done.stdout.split() == ["EstimateCounter()", "EstimateCounter()"]
    (line,) = budget_log_lines(done.stderr)  # logged once, not per call
    assert "estimate" in line and "pip install 'history-store[tokens]'" in line


def test_offline_without_the_encoding_file_the_default_is_the_estimate(tmp_path: Path) -> None:
    done = run_python(
        PICK
        + """
from history_store import ConfigurationError
from history_store.budget.tokens import TiktokenCounter
try:
    TiktokenCounter.load()
except ConfigurationError as exc:
    print(exc)
""",
        TIKTOKEN_CACHE_DIR=str(tmp_path),
    )
    picked, refused = done.stdout.split("\n", 1)
    assert picked.split() == ["EstimateCounter()", "EstimateCounter()"]
    (line,) = budget_log_lines(done.stderr)
    assert "'o200k_base'" in line and "TIKTOKEN_CACHE_DIR" in line
    assert list(tmp_path.iterdir()) == []
    # Asked for by name, tiktoken's counter refuses with what to do instead.
    assert refused.startswith("tiktoken could not load the 'o200k_base' encoding")
    assert "put the encoding file in TIKTOKEN_CACHE_DIR" in refused


def bundled_o200k() -> Path:
    """LiteLLM's copy of o200k_base (the dev extra installs LiteLLM)."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("LiteLLM, whose wheel ships o200k_base, is not installed")
    path = Path(next(iter(spec.submodule_search_locations)))
    found = path / "litellm_core_utils" / "tokenizers" / O200K_CACHE_NAME
    if not found.exists():
        pytest.skip(f"this LiteLLM does not ship {found.name}")
    return found


def test_with_the_encoding_file_offline_the_default_is_tiktoken(tmp_path: Path) -> None:
    shutil.copy(bundled_o200k(), tmp_path / O200K_CACHE_NAME)
    done = run_python(
        """
        import json
        from history_store.budget.tokens import default_counter
        counter = default_counter()
        texts = ["hello world", "Hello, world!", "<|endoftext|>"]
        print(json.dumps({
            "counter": repr(counter),
            "texts": [counter.count_text(t) for t in texts],
            "item": counter.count_item({"role": "user", "content": "hello world"}),
        }))
        """,
        TIKTOKEN_CACHE_DIR=str(tmp_path),
    )
    counted = json.loads(done.stdout)
    assert counted["counter"] == "TiktokenCounter('o200k_base')"
    # o200k_base: hello| world; Hello|,| world|!; special-token text is counted as plain text.
    assert counted["texts"][:2] == [2, 4] and counted["texts"][2] > 1
    assert counted["item"] == ITEM_OVERHEAD_TOKENS + 2
    assert budget_log_lines(done.stderr) == []


# --- calibration ------------------------------------------------------------------------


def test_no_observations_means_no_scaling() -> None:
    assert calibration_ratio([]) == 1.0
    assert calibration_ratio([(0, 50), (100, 0)]) == 1.0  # unusable pairs are skipped


def test_the_ratio_is_the_worst_recent_request_and_never_below_one() -> None:
    assert calibration_ratio([(100, 130)]) == 1.3
    assert calibration_ratio([(100, 80), (100, 90)]) == 1.0
    assert calibration_ratio([(100, 120), (200, 300), (100, 110)]) == 1.5
    # Only the last `window` requests: an early outlier stops counting.
    history = [(10, 40)] + [(1000, 1100)] * 8
    assert calibration_ratio(history) == 1.1
    assert calibration_ratio(history, window=9) == 4.0
    with pytest.raises(InvalidArgumentError, match="window"):
        calibration_ratio(history, window=0)


def test_calibrated_rounds_up_but_never_for_a_floats_last_bit() -> None:
    assert calibrated(100, 1.3) == 130  # 100 * 1.3 is 130.00000000000003
    assert calibrated(29, 1.3) == 38
    assert calibrated(10, 1.0) == 10
    with pytest.raises(InvalidArgumentError, match="ratio"):
        calibrated(10, 0)


def test_calibration_respects_a_server_that_counts_more() -> None:
    """A server counting 30% more than the estimate: uncalibrated, the estimate says a
    request fits when the server refuses it; calibrated by earlier usage, it does not."""
    limit = 400
    with StubModelServer(token_scale=1.3, max_context_tokens=limit) as server:
        client = OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        messages: list[dict[str, Any]] = []
        observations: list[tuple[int, int]] = []
        for turn in range(4):
            messages.append({"role": "user", "content": f"turn {turn} " + "w" * 150})
            ours = sum(estimate.count_item(m) for m in messages)
            usage = client.chat.completions.create(model="m", messages=messages).usage
            assert usage is not None
            observations.append((ours, usage.prompt_tokens))
            messages.append({"role": "assistant", "content": "ok"})
        ratio = calibration_ratio(observations)
        assert 1.3 <= ratio < 1.32

        messages.append({"role": "user", "content": "w" * 600})
        ours = sum(estimate.count_item(m) for m in messages)
        assert ours <= limit < calibrated(ours, ratio)  # the raw estimate would send it
        assert server.count_request_tokens({"messages": messages}) > limit
