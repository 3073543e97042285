"""The viewer as an ASGI app: :func:`create_app` and its pages.

Every page has its data as JSON at the same address under ``/api``:

=========================  ==============================  ==================================
page                       JSON                            shows
=========================  ==============================  ==================================
``/sessions``              ``/api/sessions``               sessions by id, filtered, paged
``/sessions/{id}``         ``/api/sessions/{id}``          one session, a page of its items
``/search?q=...``          ``/api/search?q=...``           full-text hits, words marked
=========================  ==============================  ==================================

``/`` redirects to ``/sessions``; ``/static/...`` holds the stylesheet and script.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .._json import to_json
from ..errors import HistoryStoreError, InvalidArgumentError, SessionNotFoundError
from ..tools._open import Database
from ..tools.inspect import session_page
from ..tools.metadata import metadata_value
from ..tools.search import search_hits
from . import access, present
from .queries import MAX_PAGE_ITEMS, Reader, session_view

__all__ = ["create_app", "READER_STATE"]

READER_STATE = "history_store_reader"
"""The name of the app state attribute holding its :class:`~.queries.Reader`."""

_SESSIONS_PAGE = 50
_MAX_SESSIONS_PAGE = 500
_ITEMS_PAGE = 200
_SEARCH_LIMIT = 50
_MAX_SEARCH_LIMIT = 500
# The largest values the columns hold (seq BIGINT, turn INTEGER), and an idle time whose
# cut-off date is still a date.
_MAX_SEQ = 2**63 - 1
_MAX_TURN = 2**31 - 1
_MAX_IDLE_DAYS = 100_000


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("history_store.viewer", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["utc"] = present.utc_text
    environment.filters["compact_json"] = lambda value: json.dumps(value, ensure_ascii=False)
    return environment


_TEMPLATES = _environment()
_PAGES = ("sessions.html", "session.html", "search.html", "error.html")


class _Page:
    """What every template gets: links that work wherever the app is mounted."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.base = request.scope.get("root_path", "").rstrip("/")

    def link(self, path: str, **params: Any) -> str:
        query = urlencode({k: v for k, v in params.items() if v is not None and v != ""})
        return f"{self.base}{path}" + (f"?{query}" if query else "")

    def session_link(self, session_id: str, **params: Any) -> str:
        return self.link("/sessions/" + quote(session_id, safe=""), **params)

    def static(self, name: str) -> str:
        return f"{self.base}/static/{name}"

    def json_link(self) -> str:
        """The address of this page's data: the same path and query under ``/api``."""
        query = self.request.url.query
        quoted = quote(_route_path(self.request), safe="/")
        return f"{self.base}/api{quoted}" + (f"?{query}" if query else "")

    def render(self, template: str, **context: Any) -> HTMLResponse:
        html = _TEMPLATES.get_template(template).render(page=self, **context)
        return HTMLResponse(html)


def _route_path(request: Request) -> str:
    """The request's path inside this app (without the path it is mounted at)."""
    path: str = request.scope.get("path", "")
    root: str = request.scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _text(request: Request, name: str) -> str | None:
    # Not stripped: a session id or a metadata key may begin or end with a space.
    return request.query_params.get(name) or None


def _number(
    request: Request,
    name: str,
    convert: Callable[[str], Any],
    *,
    minimum: float = 0,
    maximum: float | None = None,
) -> Any:
    raw = (_text(request, name) or "").strip()
    if not raw:
        return None
    try:
        value = convert(raw)
    except ValueError:
        raise HTTPException(400, f"{name} must be a number, not {raw!r}") from None
    if not math.isfinite(value) or value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise HTTPException(400, f"{name} must be {bound}, not {raw}")
    return value


def _reader(request: Request) -> Reader:
    reader: Reader = getattr(request.app.state, READER_STATE)
    return reader


def _wants_json(request: Request) -> bool:
    return _route_path(request).startswith("/api/")


def _json(document: Any, status_code: int = 200) -> Response:
    return Response(to_json(document), status_code=status_code, media_type="application/json")


async def _sessions(request: Request) -> Response:
    meta_value = _text(request, "meta_value")
    meta = _text(request, "meta")
    if meta_value is not None and meta is None:
        raise HTTPException(400, "meta_value needs meta: name the metadata key to compare")
    filters = {
        "prefix": _text(request, "prefix"),
        "meta": meta,
        "meta_value": meta_value,
        "idle_days": _number(request, "idle_days", float, maximum=_MAX_IDLE_DAYS),
        "limit": _number(request, "limit", int, minimum=1, maximum=_MAX_SESSIONS_PAGE),
    }
    after = _text(request, "after")
    async with _reader(request).connect() as connection:
        found = await session_page(
            connection,
            prefix=filters["prefix"],
            metadata_key=meta if meta_value is None else None,
            metadata=None
            if meta is None or meta_value is None
            else {meta: metadata_value(meta_value)},
            idle_days=filters["idle_days"],
            after=after,
            limit=filters["limit"] or _SESSIONS_PAGE,
        )
    if _wants_json(request):
        return _json({"sessions": found.sessions, "next_after": found.next_after})
    return _Page(request).render(
        "sessions.html", found=found, filters=filters, after=after, title="Sessions"
    )


async def _session(request: Request) -> Response:
    session_id: str = request.path_params["session_id"]
    limit = _number(request, "limit", int, minimum=1, maximum=MAX_PAGE_ITEMS)
    view = await session_view(
        _reader(request),
        session_id,
        after=_number(request, "after", int, maximum=_MAX_SEQ),
        before=_number(request, "before", int, minimum=1, maximum=_MAX_SEQ),
        turn=_number(request, "turn", int, maximum=_MAX_TURN),
        limit=limit or _ITEMS_PAGE,
    )
    if _wants_json(request):
        return _json(
            {
                "session": view.session,
                "items": view.items,
                "turns": list(view.turns.values()),
                "summaries": view.summaries,
                "tables": {"hs_turns": view.extras.turns, "hs_summaries": view.extras.summaries},
                "previous_before": view.previous_before,
                "next_after": view.next_after,
            }
        )
    blocks, trailing = present.turn_blocks(view.items, view.turns, view.summaries)
    return _Page(request).render(
        "session.html",
        view=view,
        blocks=blocks,
        trailing_summaries=trailing,
        chart=present.usage_chart(view.turns),
        limit=limit,
        title=session_id,
    )


async def _search(request: Request) -> Response:
    query = _text(request, "q")
    if query is not None and not query.split():
        query = None  # only spaces: nothing to search for yet
    session_id = _text(request, "session")
    limit = _number(request, "limit", int, minimum=1, maximum=_MAX_SEARCH_LIMIT)
    hits: Sequence[Any] = []
    if query is not None:
        async with _reader(request).connect() as connection:
            hits = await search_hits(
                connection, query, session_id=session_id, limit=limit or _SEARCH_LIMIT
            )
    if _wants_json(request):
        if query is None:
            raise HTTPException(400, "q is missing: give the words to search for")
        return _json({"query": query, "hits": hits})
    return _Page(request).render(
        "search.html",
        query=query,
        session_id=session_id,
        limit=limit,
        hits=hits,
        highlight=present.highlight,
        title=f"Search: {query}" if query else "Search",
    )


async def _home(request: Request) -> Response:
    page = _Page(request)
    query = request.url.query
    return RedirectResponse(page.link("/sessions") + (f"?{query}" if query else ""), 307)


def _error(request: Request, status_code: int, message: str) -> Response:
    if _wants_json(request):
        return _json({"error": message}, status_code)
    response = _Page(request).render(
        "error.html", status_code=status_code, message=message, title="Error"
    )
    response.status_code = status_code
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(request, exc.status_code, str(exc.detail))


async def _library_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, SessionNotFoundError):
        return _error(request, 404, str(exc))
    if isinstance(exc, InvalidArgumentError):
        return _error(request, 400, str(exc))
    return _error(request, 503, str(exc))


async def _database_error(request: Request, exc: Exception) -> Response:
    # A database that went away or refused a read: the driver's message, as the CLI prints it.
    reason = exc.orig if isinstance(exc, DBAPIError) else exc
    return _error(request, 503, f"the database refused the read: {reason}")


def _routes() -> list[Route | Mount]:
    routes: list[Route | Mount] = [Route("/", _home, name="home")]
    for prefix in ("", "/api"):
        routes += [
            Route(f"{prefix}/sessions", _sessions),
            Route(f"{prefix}/sessions/{{session_id:path}}", _session),
            Route(f"{prefix}/search", _search),
        ]
    static = StaticFiles(packages=[("history_store.viewer", "static")])
    routes.append(Mount("/static", app=static, name="static"))
    return routes


def create_app(
    store: Database = None,
    *,
    token: str | None = None,
    allowed_hosts: Sequence[str] | None = None,
) -> Starlette:
    """The read-only web viewer of a history database, as a Starlette (ASGI) app.

    Args:
        store: the database: an open :class:`~history_store.HistoryStore`, a URL, or
            ``None`` for ``$HISTORY_STORE_URL`` (else ``./history.db``). The viewer opens
            its own read-only engine on it (SQLite ``mode=ro``; PostgreSQL
            ``default_transaction_read_only``), so it cannot write. An in-memory store has
            no file to open twice: the viewer reads through the store's own engine.
        token: when given, every request must carry it (``Authorization: Bearer TOKEN``,
            ``?token=TOKEN``, which also sets a cookie, or that cookie); others get 401.
        allowed_hosts: when given, requests whose ``Host`` header is not one of these get
            400 (``history-store serve`` passes the loopback names, so a web page cannot
            reach a local viewer through DNS rebinding).

    Only GET and HEAD are answered (anything else: 405), every stored string is escaped,
    and the pages load nothing from anywhere but the app itself.

    The database is opened when the app's lifespan starts (a missing database raises
    there) and closed when it ends. Mounted inside another app, whose framework does not
    run a mounted app's lifespan, the viewer opens it on the first request instead; run
    ``viewer.router.lifespan_context(viewer)`` inside your own lifespan to close it too.
    """
    reader = Reader(store)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await reader.start()
        for name in _PAGES:  # compiled now, not on the first visitor's request
            _TEMPLATES.get_template(name)
        try:
            yield
        finally:
            await reader.stop()

    middleware = [
        Middleware(access.only_reads),
        Middleware(access.page_headers),
    ]
    if allowed_hosts is not None:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    if token is not None:
        if not token:
            raise InvalidArgumentError("the viewer's token is empty; give a non-empty token")
        middleware.append(Middleware(access.require_token, token=token))
    app = Starlette(
        routes=_routes(),
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            HTTPException: _http_error,
            HistoryStoreError: _library_error,
            DBAPIError: _database_error,
        },
    )
    setattr(app.state, READER_STATE, reader)
    return app
