"""A loopback model server speaking Chat Completions and Responses, for tests and demos.

It lets the whole stack run offline through the real ``openai`` client::

    with StubModelServer() as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="stub", max_retries=0)
        model = OpenAIChatCompletionsModel("stub-model", client)
        ...
        server.requests  # every request body, in order

By default a reply says how many messages the model was sent and echoes the last user
text, so a test can see exactly what history reached the model. :meth:`StubModelServer.script`
queues replies: text, a :class:`ToolCall`, or a :class:`Failure` (an HTTP error).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["StubModelServer", "ToolCall", "Failure", "RecordedRequest"]


@dataclass(frozen=True)
class ToolCall:
    """A scripted reply that calls the function ``name`` with JSON ``arguments``."""

    name: str
    arguments: str = "{}"


@dataclass(frozen=True)
class Failure:
    """A scripted reply that fails with HTTP ``status``."""

    status: int = 500
    message: str = "scripted failure"


Reply = str | ToolCall | Failure


@dataclass
class RecordedRequest:
    """One request the server received."""

    path: str
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def api(self) -> str:
        """``"chat"`` or ``"responses"``."""
        return "chat" if self.path.endswith("/chat/completions") else "responses"

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation sent: Chat ``messages``, or Responses ``input`` as a list."""
        if self.api == "chat":
            return list(self.body.get("messages", []))
        given = self.body.get("input", [])
        return [{"role": "user", "content": given}] if isinstance(given, str) else list(given)

    def texts(self) -> list[str]:
        """The plain text of every message sent, in order."""
        out = []
        for message in self.messages:
            content = message.get("content")
            if isinstance(content, str):
                out.append(content)
            elif isinstance(content, list):
                out.extend(p.get("text", "") for p in content if isinstance(p, dict))
        return out


def _last_user_text(request: RecordedRequest) -> str:
    for message in reversed(request.messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


class StubModelServer:
    """An HTTP server on 127.0.0.1 answering ``/v1/chat/completions`` and ``/v1/responses``."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[RecordedRequest] = []
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next requests; after them, the default echo reply."""
        with self._lock:
            self._replies.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._replies.clear()

    def start(self) -> StubModelServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> StubModelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _next(self, request: RecordedRequest) -> tuple[int, Reply]:
        with self._lock:
            self.requests.append(request)
            number = len(self.requests)
            reply = self._replies.popleft() if self._replies else None
        if reply is None:
            reply = (
                f"reply {number}: saw {len(request.messages)} messages; "
                f"last user said: {_last_user_text(request)}"
            )
        return number, reply

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle's algorithm on, every
            # keep-alive request after the first would wait ~40 ms for a delayed ACK.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                request = RecordedRequest(path=self.path, body=body)
                number, reply = stub._next(request)
                if isinstance(reply, Failure):
                    self._send_json(reply.status, {"error": {"message": reply.message}})
                    return
                chat = request.api == "chat"
                if body.get("stream"):
                    events = (
                        _chat_chunks(number, reply) if chat else _response_events(number, reply)
                    )
                    self._send_sse(events, done_marker=chat)
                else:
                    payload = _chat_completion(number, reply) if chat else _response(number, reply)
                    self._send_json(200, payload)

            def _send_json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _send_sse(self, events: list[dict[str, Any]], *, done_marker: bool) -> None:
                lines = [f"data: {json.dumps(event)}\n\n" for event in events]
                if done_marker:
                    lines.append("data: [DONE]\n\n")
                data = "".join(lines).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


_CHAT_USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
_RESPONSES_USAGE = {
    "input_tokens": 10,
    "output_tokens": 5,
    "total_tokens": 15,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens_details": {"reasoning_tokens": 0},
}


def _chat_message(number: int, reply: str | ToolCall) -> dict[str, Any]:
    if isinstance(reply, ToolCall):
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{number}",
                    "type": "function",
                    "function": {"name": reply.name, "arguments": reply.arguments},
                }
            ],
        }
    return {"role": "assistant", "content": reply}


def _chat_completion(number: int, reply: str | ToolCall) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion",
        "created": 0,
        "model": "stub-model",
        "choices": [
            {
                "index": 0,
                "message": _chat_message(number, reply),
                "finish_reason": "tool_calls" if isinstance(reply, ToolCall) else "stop",
            }
        ],
        "usage": _CHAT_USAGE,
    }


def _chat_chunks(number: int, reply: str | ToolCall) -> list[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None, usage: Any = None) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{number}",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "stub-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            "usage": usage,
        }

    if isinstance(reply, ToolCall):
        call = _chat_message(number, reply)["tool_calls"][0]
        return [
            chunk({"role": "assistant", "tool_calls": [{"index": 0, **call}]}, None),
            chunk({}, "tool_calls", _CHAT_USAGE),
        ]
    half = len(reply) // 2
    return [
        chunk({"role": "assistant", "content": reply[:half]}, None),
        chunk({"content": reply[half:]}, None),
        chunk({}, "stop", _CHAT_USAGE),
    ]


def _output_item(number: int, reply: str | ToolCall) -> dict[str, Any]:
    if isinstance(reply, ToolCall):
        return {
            "type": "function_call",
            "id": f"fc_{number}",
            "call_id": f"call_{number}",
            "name": reply.name,
            "arguments": reply.arguments,
            "status": "completed",
        }
    return {
        "type": "message",
        "id": f"msg_{number}",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": reply, "annotations": []}],
    }


def _response(number: int, reply: str | ToolCall, status: str = "completed") -> dict[str, Any]:
    return {
        "id": f"resp_{number}",
        "object": "response",
        "created_at": 0,
        "model": "stub-model",
        "status": status,
        "output": [_output_item(number, reply)] if status == "completed" else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": _RESPONSES_USAGE if status == "completed" else None,
    }


def _response_events(number: int, reply: str | ToolCall) -> list[dict[str, Any]]:
    item = _output_item(number, reply)
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response(number, reply, "in_progress")},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
    ]
    if not isinstance(reply, ToolCall):
        events.append(
            {
                "type": "response.output_text.delta",
                "item_id": item["id"],
                "output_index": 0,
                "content_index": 0,
                "delta": reply,
                "logprobs": [],
            }
        )
    events += [
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": _response(number, reply)},
    ]
    for sequence_number, event in enumerate(events):
        event["sequence_number"] = sequence_number
    return events
