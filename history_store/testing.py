"""A loopback model server speaking Chat Completions and Responses, for tests and demos.

It lets the whole stack run offline through the real ``openai`` client::

    with StubModelServer() as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="stub", max_retries=0)
        model = OpenAIChatCompletionsModel("stub-model", client)
        ...
        server.requests  # every request received, in order

By default a reply says how many messages the model was sent and echoes the last user
text, so a test can see exactly what history reached the model. :meth:`StubModelServer.script`
queues replies: text (a ``str`` or a :class:`Reply`), a :class:`ToolCall`, or a
:class:`Failure` (an HTTP error).

It is as strict as OpenAI's servers where history_store can get things wrong, and answers
with OpenAI's error bodies (sources in ``history_store/_openai_rules.py``):

- **Tool-call pairing.** Chat: a ``tool`` message must follow the assistant message with
  ``tool_calls`` it answers, and every call must be answered before the next other message.
  Responses: every ``function_call`` needs its ``function_call_output`` and the reverse.
  Broken pairs answer HTTP 400 (``code: null``), streamed or not.
- **Context length.** With ``max_context_tokens``, a request whose input tokens
  (:meth:`StubModelServer.count_request_tokens`) exceed it answers HTTP 400 with ``code:
  "context_length_exceeded"``; on Chat, input plus a requested ``max_completion_tokens`` /
  ``max_tokens`` must fit too. A streamed Chat request gets the same 400 before any event.
  A streamed Responses request gets what OpenAI sends there (dyad-sh/dyad#1672,
  maximhq/bifrost#4413): HTTP 200, ``response.created``, ``response.in_progress``, then an
  ``error`` event carrying the same error, which the ``openai`` client raises as
  ``openai.APIError`` with ``code == "context_length_exceeded"``.

A rejected request is recorded (with its ``error``) but uses up no scripted reply. Usage
reports the counted input tokens (``prompt_tokens`` / ``input_tokens``) and the reply's
tokens by the same counter, unless a scripted reply sets :class:`Usage`.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from ._openai_rules import (
    CONTEXT_LENGTH_EXCEEDED,
    chat_context_error,
    chat_pairing_error,
    responses_context_error,
    responses_pairing_error,
)
from ._stub_wire import (
    Said,
    Tokens,
    chat_chunks,
    chat_completion,
    response,
    response_error_events,
    response_events,
)
from .budget.tokens import EstimateCounter, TokenCounter, calibrated
from .errors import InvalidArgumentError

__all__ = ["StubModelServer", "Reply", "ToolCall", "Failure", "Usage", "RecordedRequest"]


@dataclass(frozen=True)
class Usage:
    """Token usage for a scripted reply to report instead of the server's own count."""

    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Reply:
    """A scripted text reply (a plain ``str`` in :meth:`StubModelServer.script` is one)."""

    text: str
    usage: Usage | None = None


@dataclass(frozen=True)
class ToolCall:
    """A scripted reply that calls the function ``name`` with JSON ``arguments``."""

    name: str
    arguments: str = "{}"
    usage: Usage | None = None


@dataclass(frozen=True)
class Failure:
    """A scripted reply that fails with HTTP ``status``."""

    status: int = 500
    message: str = "scripted failure"


Scripted = str | Reply | ToolCall | Failure

# How the server answers a request: a scripted failure, a rejection's error body, or what the
# model says and the usage reported.
_Answer = Failure | dict[str, Any] | tuple[Said, Tokens]


@dataclass
class RecordedRequest:
    """One request the server received, and how it was answered.

    ``input_tokens`` is the server's count of its input; ``usage`` what the answer reported
    (``None`` when it was rejected or a scripted failure); ``error`` the OpenAI error body
    when the server rejected it.
    """

    path: str
    body: dict[str, Any] = field(default_factory=dict)
    input_tokens: int = 0
    usage: Usage | None = None
    error: dict[str, Any] | None = None

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
    """An HTTP server on 127.0.0.1 answering ``/v1/chat/completions`` and ``/v1/responses``.

    ``max_context_tokens`` turns on the context-length check (``None``: no limit).
    ``counter`` counts tokens (default :class:`~history_store.budget.tokens.EstimateCounter`,
    the estimate the library falls back to); ``token_scale`` makes the server count that many
    times the counter's figure (``1.3``: 30% more than a client using the same counter), as a
    server with another tokenizer or chat template would. ``responder`` picks the reply to a
    request when none is queued (``None`` from it: the default echo), for a test that
    answers by what was asked (a summarizer's requests, say).
    """

    def __init__(
        self,
        port: int = 0,
        *,
        max_context_tokens: int | None = None,
        counter: TokenCounter | None = None,
        token_scale: float = 1.0,
        responder: Callable[[RecordedRequest], Scripted | None] | None = None,
    ) -> None:
        if max_context_tokens is not None and max_context_tokens < 1:
            raise InvalidArgumentError(
                f"max_context_tokens must be positive or None, got {max_context_tokens}"
            )
        if not token_scale > 0:
            raise InvalidArgumentError(f"token_scale must be positive, got {token_scale}")
        self.max_context_tokens = max_context_tokens
        self.counter: TokenCounter = counter if counter is not None else EstimateCounter()
        self.token_scale = token_scale
        self.responder = responder
        self.requests: list[RecordedRequest] = []
        self._replies: deque[Reply | ToolCall | Failure] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def count_request_tokens(self, body: Mapping[str, Any]) -> int:
        """The input tokens this server counts for a request ``body`` (and reports as usage).

        The rule: ``token_scale`` times the sum of ``counter.count_item`` over the messages
        the model is sent, plus ``counter.count_text`` of each tool definition's JSON, rounded
        up. For Chat the messages are ``messages``; for Responses, ``instructions`` (as one
        system message) and then ``input`` (a string is one user message). Other settings
        are not counted.
        """
        sent = sum(self.counter.count_item(message) for message in _sent_messages(body))
        tools = body.get("tools")
        if isinstance(tools, list):
            sent += sum(self.counter.count_text(json.dumps(tool)) for tool in tools)
        return calibrated(sent, self.token_scale)

    def script(self, *replies: Scripted) -> None:
        """Queue replies for the next accepted requests; after them, the default echo reply."""
        queued = [Reply(reply) if isinstance(reply, str) else reply for reply in replies]
        with self._lock:
            self._replies.extend(queued)

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

    def _rejection(self, request: RecordedRequest) -> dict[str, Any] | None:
        """The error body for a request a real server would refuse, checked as it would:
        the shape of the conversation first, then its size."""
        body, limit, counted = request.body, self.max_context_tokens, request.input_tokens
        if request.api == "chat":
            completion = body.get("max_completion_tokens", body.get("max_tokens"))
            return chat_pairing_error(request.messages) or (
                chat_context_error(limit, counted, completion) if limit is not None else None
            )
        return responses_pairing_error(body) or (
            responses_context_error(limit, counted) if limit is not None else None
        )

    def _next(self, request: RecordedRequest) -> tuple[int, _Answer]:
        """Record ``request``; return its number and how to answer it."""
        request.input_tokens = self.count_request_tokens(request.body)
        request.error = self._rejection(request)
        with self._lock:
            self.requests.append(request)
            number = len(self.requests)
            if request.error is not None:
                return number, request.error
            reply = self._replies.popleft() if self._replies else None
        if reply is None and self.responder is not None:
            chosen = self.responder(request)
            reply = Reply(chosen) if isinstance(chosen, str) else chosen
        if reply is None:
            reply = Reply(
                f"reply {number}: saw {len(request.messages)} messages; "
                f"last user said: {_last_user_text(request)}"
            )
        if isinstance(reply, Failure):
            return number, reply
        said = _said(reply)
        spoken = said if isinstance(said, str) else "".join(said)  # a call: name + arguments
        request.usage = reply.usage or Usage(
            request.input_tokens, calibrated(self.counter.count_text(spoken), self.token_scale)
        )
        return number, (said, Tokens(request.usage.input_tokens, request.usage.output_tokens))

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
                number, answer = stub._next(request)
                chat, streamed = request.api == "chat", bool(body.get("stream"))
                if isinstance(answer, Failure):
                    self._send_json(answer.status, {"error": {"message": answer.message}})
                elif isinstance(answer, dict):
                    error = answer["error"]
                    if streamed and not chat and error["code"] == CONTEXT_LENGTH_EXCEEDED:
                        self._send_sse(response_error_events(number, error), done_marker=False)
                    else:
                        self._send_json(400, answer)
                elif streamed:
                    stream = chat_chunks if chat else response_events
                    self._send_sse(stream(number, *answer), done_marker=chat)
                else:
                    payload = chat_completion if chat else response
                    self._send_json(200, payload(number, *answer))

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


def _sent_messages(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if "messages" in body:
        return [m for m in body.get("messages") or [] if isinstance(m, Mapping)]
    sent: list[Mapping[str, Any]] = []
    if isinstance(instructions := body.get("instructions"), str):
        sent.append({"role": "system", "content": instructions})
    given = body.get("input")
    if isinstance(given, str):
        sent.append({"role": "user", "content": given})
    elif isinstance(given, list):
        sent += [item for item in given if isinstance(item, Mapping)]
    return sent


def _said(reply: Reply | ToolCall) -> Said:
    return reply.text if isinstance(reply, Reply) else (reply.name, reply.arguments)
