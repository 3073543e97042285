"""Who may ask the viewer what: GET and HEAD only, the token when there is one, and
headers that keep a page from loading anything but its own files.

These are plain ASGI middlewares, so they cover every route, the static files and the
error pages alike.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["TOKEN_COOKIE", "TOKEN_PARAMETER", "only_reads", "require_token", "page_headers"]

TOKEN_COOKIE = "history_store_token"
TOKEN_PARAMETER = "token"
_ALLOWED_METHODS = ("GET", "HEAD")

# Pages load only their own stylesheet, script and images: no CDN, no inline script, and a
# stored string that slipped through escaping could still not run or phone home.
_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {
    "content-security-policy": _CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    # The token may be in the address; no other site is told it.
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def only_reads(app: ASGIApp) -> ASGIApp:
    """Answer anything but GET and HEAD with 405, before any routing or database work."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in _ALLOWED_METHODS:
            response = PlainTextResponse(
                "the history viewer is read-only: only GET and HEAD are answered\n",
                status_code=405,
                headers={"allow": ", ".join(_ALLOWED_METHODS)},
            )
            await response(scope, receive, send)
            return
        await app(scope, receive, send)

    return guarded


def _presented(request: Request) -> tuple[str | None, str]:
    """What the request presents as its token, and where: ``header``, ``query`` or
    ``cookie``."""
    authorization = request.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip(), "header"
    if TOKEN_PARAMETER in request.query_params:
        return request.query_params[TOKEN_PARAMETER], "query"
    return request.cookies.get(TOKEN_COOKIE), "cookie"


def require_token(app: ASGIApp, token: str) -> ASGIApp:
    """Let through only requests carrying ``token``: ``Authorization: Bearer TOKEN``, the
    ``token`` query parameter (which also sets a cookie, so the page's own links work) or
    that cookie. Anything else gets 401."""
    expected = token.encode("utf-8")
    # The cookie holds a digest of the token, not the token: any token fits in a cookie
    # (quotes, spaces, semicolons) and the browser's cookie store never holds the secret.
    cookie = hashlib.sha256(b"history_store viewer cookie\0" + expected).hexdigest()

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        presented, source = _presented(Request(scope))
        wanted = cookie.encode("ascii") if source == "cookie" else expected
        if presented is None or not hmac.compare_digest(presented.encode("utf-8"), wanted):
            response = PlainTextResponse(
                "this history viewer needs its token: open the address `history-store serve` "
                "printed (it ends in ?token=...), or send Authorization: Bearer TOKEN\n",
                status_code=401,
                headers={"www-authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        if source != "query":
            await app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                path = scope.get("root_path") or "/"
                headers.append(
                    "set-cookie",
                    f"{TOKEN_COOKIE}={cookie}; Path={path}; HttpOnly; SameSite=Strict",
                )
            await send(message)

        await app(scope, receive, send_with_cookie)

    return guarded


def page_headers(app: ASGIApp) -> ASGIApp:
    """Add the security headers (see ``_PAGE_HEADERS``) to every response."""

    async def with_headers(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _PAGE_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await app(scope, receive, send_with_headers)

    return with_headers
