"""What OpenAI's servers reject before a model runs, and the error bodies they answer with.

Used by :class:`history_store.testing.StubModelServer`. Each function returns the JSON body of
an HTTP 400 (``{"error": {"message", "type", "param", "code"}}``), or ``None`` when the
request passes. The messages, ``param`` and ``code`` values are copied from OpenAI answers
quoted in public bug reports:

- Context length, Chat Completions: "This model's maximum context length is 4097 tokens.
  However, your messages resulted in 4294 tokens. Please reduce the length of the
  messages.", ``param: "messages"``, ``code: "context_length_exceeded"``
  (github.com/chathub-dev/chathub/issues/126); with a completion limit in the request,
  "However, you requested 4203 tokens (3703 in the messages, 500 in the completion). Please
  reduce the length of the messages or completion." (The-Vibe-Company/quivr#505; vLLM's
  ``serving_chat`` answers the same, ruipeterpan/specreason#4).
- Context length, Responses: "Your input exceeds the context window of this model. Please
  adjust your input and try again.", ``param: "input"``, ``code: "context_length_exceeded"``
  (the-open-agent/openagent#2344, dyad-sh/dyad#1672).
- Tool-call pairing, Chat Completions (sdcb/chats#132, dapr/dapr-agents#145), all with
  ``param: "messages.[i]...."`` and ``code: null``: "An assistant message with 'tool_calls'
  must be followed by tool messages responding to each 'tool_call_id'. The following
  tool_call_ids did not have response messages: call_a, call_b"; "Invalid parameter:
  messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."
  (OpenAI's spelling); "Invalid parameter: 'tool_call_id' of 'call_x' not found in
  'tool_calls' of previous message."
- Tool-call pairing, Responses, ``param: "input"``, ``code: null``: "No tool output found for
  function call call_x." (router-for-me/CLIProxyAPI#2368); "No tool call found for function
  call output with call_id call_x." (microsoft/vscode#320060, continuedev/continue#10092).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
RESPONSES_CONTEXT_MESSAGE = (
    "Your input exceeds the context window of this model. Please adjust your input and try again."
)


def error_body(message: str, param: str | None, code: str | None) -> dict[str, Any]:
    """OpenAI's error envelope for a request it rejects as invalid."""
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }


def chat_context_error(
    limit: int, input_tokens: int, completion_tokens: int | None
) -> dict[str, Any] | None:
    """The 400 for a Chat request over ``limit``: its input alone, or input plus the
    completion limit it asked for (``max_completion_tokens`` / ``max_tokens``)."""
    requested = input_tokens + (completion_tokens or 0)
    if requested <= limit:
        return None
    head = f"This model's maximum context length is {limit} tokens. However, "
    if completion_tokens is None:
        message = (
            f"{head}your messages resulted in {input_tokens} tokens. "
            "Please reduce the length of the messages."
        )
    else:
        message = (
            f"{head}you requested {requested} tokens ({input_tokens} in the messages, "
            f"{completion_tokens} in the completion). "
            "Please reduce the length of the messages or completion."
        )
    return error_body(message, "messages", CONTEXT_LENGTH_EXCEEDED)


def responses_context_error(limit: int, input_tokens: int) -> dict[str, Any] | None:
    """The 400 (or, streamed, the ``error`` event's payload) for Responses input over ``limit``."""
    if input_tokens <= limit:
        return None
    return error_body(RESPONSES_CONTEXT_MESSAGE, "input", CONTEXT_LENGTH_EXCEEDED)


def chat_pairing_error(messages: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The 400 for Chat messages whose tool calls and tool messages do not pair up.

    A ``tool`` message must directly follow (after other tool messages) an assistant
    message with ``tool_calls``, and answer one of its ids; every id of that message must be
    answered before the next non-tool message, or the end of the list. ``param`` names the
    message where the rule broke (the assistant message itself when the list ends early).
    """
    open_calls: list[str] = []  # the last assistant message's ids, not yet answered
    answerable: set[str] = set()  # that message's ids, answered or not
    opened_at = 0
    for index, message in enumerate(messages):
        if message.get("role") == "tool":
            call_id = message.get("tool_call_id")
            if not answerable:
                return error_body(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{index}].role",
                    None,
                )
            if call_id not in answerable:
                return error_body(
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in "
                    "'tool_calls' of previous message.",
                    f"messages.[{index}].tool_call_id",
                    None,
                )
            open_calls = [open_id for open_id in open_calls if open_id != call_id]
            continue
        if open_calls:
            return _unanswered(open_calls, index)
        ids = [str(call.get("id")) for call in message.get("tool_calls") or []]
        open_calls, answerable, opened_at = ids, set(ids), index
    return _unanswered(open_calls, opened_at) if open_calls else None


def responses_pairing_error(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The 400 for Responses input with a function call and its output not both present.

    Skipped when the request continues server-side state (``previous_response_id`` or
    ``conversation``): the other half may be stored there.
    """
    items = body.get("input")
    if not isinstance(items, list) or body.get("previous_response_id") or body.get("conversation"):
        return None
    items = [item for item in items if isinstance(item, Mapping)]
    calls = [item.get("call_id") for item in items if item.get("type") == "function_call"]
    outputs = [item.get("call_id") for item in items if item.get("type") == "function_call_output"]
    for call_id in outputs:
        if call_id not in calls:
            message = f"No tool call found for function call output with call_id {call_id}."
            return error_body(message, "input", None)
    for call_id in calls:
        if call_id not in outputs:
            return error_body(f"No tool output found for function call {call_id}.", "input", None)
    return None


def _unanswered(open_calls: list[str], index: int) -> dict[str, Any]:
    return error_body(
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        + ", ".join(open_calls),
        f"messages.[{index}].role",
        None,
    )
