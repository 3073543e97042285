"""Realistic Responses-format conversation items, and tags to verify order across processes."""

from __future__ import annotations

import json
import re
from typing import Any

_FILLER = (
    "The forecast for the coming days shows mild temperatures with scattered showers in the "
    "afternoon, clearing towards the evening. Winds stay light from the south-west, humidity "
    "is moderate, and the weekend looks dry and sunny across most of the region. Pack a light "
    "jacket and an umbrella just in case; more in the detailed report."
)
TAG_RE = re.compile(r"\[tag (\w+):(\d+):(\d)\]")


def _assistant(batch: int, k: int, tag: str) -> dict[str, Any]:
    text = f"{tag} {_FILLER}"[:300]
    return {
        "id": f"msg_{batch:08d}{k}",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def make_batch(batch: int, writer: str = "w") -> list[dict[str, Any]]:
    """Four items of one exchange; every third batch is a tool round trip.

    Each item carries ``[tag writer:batch:k]`` so a reader can check order and atomicity.
    """
    tags = [f"[tag {writer}:{batch}:{k}]" for k in range(4)]
    user = {"role": "user", "content": f"{tags[0]} What is the weather like in city {batch}?"}
    if batch % 3 == 0:
        call_id = f"call_{batch:08d}"
        return [
            user,
            {
                "type": "function_call",
                "id": f"fc_{batch:08d}",
                "call_id": call_id,
                "name": "get_weather",
                "arguments": json.dumps({"city": f"city {batch}", "tag": tags[1]}),
                "status": "completed",
            },
            {
                "type": "function_call_output",
                "call_id": call_id,
                "output": f"{tags[2]} 18C, light rain, wind 9 km/h SW",
            },
            _assistant(batch, 3, tags[3]),
        ]
    return [
        user,
        _assistant(batch, 1, tags[1]),
        {"role": "user", "content": f"{tags[2]} And tomorrow?"},
        _assistant(batch, 3, tags[3]),
    ]


def item_pool(batches: int = 250) -> list[dict[str, Any]]:
    """A pool of distinct items that bulk fills cycle through."""
    return [item for batch in range(batches) for item in make_batch(batch)]


def tag_of(item: Any) -> tuple[str, int, int]:
    """The ``(writer, batch, k)`` tag carried by an item made by :func:`make_batch`."""
    match = TAG_RE.search(json.dumps(item))
    if match is None:
        raise ValueError(f"item carries no tag: {item!r}")
    return match.group(1), int(match.group(2)), int(match.group(3))
