"""The JSON :class:`history_store.testing.StubModelServer` answers with: Chat completions and
their stream chunks, Responses and their stream events, in the shapes the ``openai`` client
parses. Request ``number`` makes the ids (``chatcmpl-3``, ``resp_3``, ``call_3``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

FunctionCall = tuple[str, str]
"""A function call the model makes: ``(name, arguments)``."""

Said = str | FunctionCall
"""What the model says: text, or a function call."""


class Tokens(NamedTuple):
    """The usage an answer reports."""

    input: int
    output: int


def chat_completion(number: int, said: Said, usage: Tokens) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion",
        "created": 0,
        "model": "stub-model",
        "choices": [
            {
                "index": 0,
                "message": _chat_message(number, said),
                "finish_reason": "stop" if isinstance(said, str) else "tool_calls",
            }
        ],
        "usage": _chat_usage(usage),
    }


def chat_chunks(number: int, said: Said, usage: Tokens) -> list[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None, usage: Any = None) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{number}",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "stub-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            "usage": usage,
        }

    if not isinstance(said, str):
        call = _chat_message(number, said)["tool_calls"][0]
        return [
            chunk({"role": "assistant", "tool_calls": [{"index": 0, **call}]}, None),
            chunk({}, "tool_calls", _chat_usage(usage)),
        ]
    half = len(said) // 2
    return [
        chunk({"role": "assistant", "content": said[:half]}, None),
        chunk({"content": said[half:]}, None),
        chunk({}, "stop", _chat_usage(usage)),
    ]


def response(number: int, said: Said, usage: Tokens) -> dict[str, Any]:
    return _response(number, [_output_item(number, said)], usage)


def response_events(number: int, said: Said, usage: Tokens) -> list[dict[str, Any]]:
    item = _output_item(number, said)
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response(number, [], None, "in_progress")},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
    ]
    if isinstance(said, str):
        events.append(
            {
                "type": "response.output_text.delta",
                "item_id": item["id"],
                "output_index": 0,
                "content_index": 0,
                "delta": said,
                "logprobs": [],
            }
        )
    events += [
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": _response(number, [item], usage)},
    ]
    return _numbered(events)


def response_error_events(number: int, error: dict[str, Any]) -> list[dict[str, Any]]:
    """A Responses stream that fails once the model starts: the shape OpenAI sends for a
    context overflow (``error`` at sequence number 2, dyad-sh/dyad#1672)."""
    started = _response(number, [], None, "in_progress")
    event_error = {key: error[key] for key in ("type", "code", "message", "param")}
    return _numbered(
        [
            {"type": "response.created", "response": started},
            {"type": "response.in_progress", "response": started},
            {"type": "error", "error": event_error},
        ]
    )


def _chat_usage(usage: Tokens) -> dict[str, int]:
    return {
        "prompt_tokens": usage.input,
        "completion_tokens": usage.output,
        "total_tokens": usage.input + usage.output,
    }


def _chat_message(number: int, said: Said) -> dict[str, Any]:
    if isinstance(said, str):
        return {"role": "assistant", "content": said}
    name, arguments = said
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": f"call_{number}",
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
        ],
    }


def _output_item(number: int, said: Said) -> dict[str, Any]:
    if isinstance(said, str):
        return {
            "type": "message",
            "id": f"msg_{number}",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": said, "annotations": []}],
        }
    name, arguments = said
    return {
        "type": "function_call",
        "id": f"fc_{number}",
        "call_id": f"call_{number}",
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


def _response(
    number: int, output: list[dict[str, Any]], usage: Tokens | None, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": f"resp_{number}",
        "object": "response",
        "created_at": 0,
        "model": "stub-model",
        "status": status,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": None
        if usage is None
        else {
            "input_tokens": usage.input,
            "output_tokens": usage.output,
            "total_tokens": usage.input + usage.output,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def _numbered(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for sequence_number, event in enumerate(events):
        event["sequence_number"] = sequence_number
    return events
