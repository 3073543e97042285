"""The viewer cannot write, escapes every stored string, answers only GET and HEAD, keeps
its token, and binds every request value as data; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa
import viewer_support as vs
from sqlalchemy.exc import DBAPIError

import history_store
from history_store import DatabaseNotFoundError
from history_store.tools.transfer import export
from history_store.viewer import create_app
from history_store.viewer.app import READER_STATE
from history_store.viewer.queries import Reader


@pytest.fixture
async def url(db_url: str, tmp_path: Path) -> str:
    await vs.build(db_url, tmp_path)
    await vs.add_turn_tables(db_url)
    return db_url


@pytest.fixture
async def viewer(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with vs.client(create_app(url)) as client:
        yield client


HOSTILE_PATH = "/sessions/" + quote(vs.HOSTILE_ID, safe="")
EVERY_PAGE = [
    "/sessions",
    "/sessions?prefix=evil",
    "/sessions?meta=note",
    HOSTILE_PATH,
    f"/sessions/{vs.TOOLS_ID}",
    "/search?q=script",
    "/search?q=look",
    "/search?q=alert",
]


async def test_stored_markup_is_inert_text_on_every_page(viewer: httpx.AsyncClient) -> None:
    for path in EVERY_PAGE:
        html = (await viewer.get(path)).text
        # Only the page's own script tag; the stored ones arrive as text.
        assert re.findall(r"<script\b[^>]*>", html) == ['<script src="/static/viewer.js" defer>'], (
            path
        )
        assert "<img" not in html and "<b>" not in html, path
    page = (await viewer.get(HOSTILE_PATH)).text
    assert "look: &lt;script&gt;window.__pwned = 1&lt;/script&gt; &lt;img src=x" in page
    assert "tool&lt;script&gt;window.__pwned = 1&lt;/script&gt;</code>" in page  # tool name
    assert "&#34;&lt;script&gt;alert(2)&lt;/script&gt;&#34;" in page  # tool arguments
    assert "&lt;/pre&gt;&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page  # output
    assert "summary &lt;script&gt;window.__pwned" in page  # summary text
    assert "&#34;note&#34;: &#34;&lt;script&gt;alert(3)&lt;/script&gt;&#34;" in page  # metadata
    hits = (await viewer.get("/search?q=look")).text
    assert "<mark>look</mark>: &lt;script&gt;window.__pwned = 1&lt;/script&gt; &lt;img" in hits


async def test_pages_load_nothing_from_elsewhere(viewer: httpx.AsyncClient) -> None:
    response = await viewer.get("/sessions")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert (await viewer.get("/static/viewer.css")).headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"])
async def test_only_get_and_head_are_answered(viewer: httpx.AsyncClient, method: str) -> None:
    for path in [
        "/",
        "/sessions",
        "/api/sessions",
        HOSTILE_PATH,
        "/search?q=x",
        "/static/viewer.css",
        "/no/such/page",
    ]:
        response = await viewer.request(method, path)
        assert response.status_code == 405, (method, path)
        assert response.headers["allow"] == "GET, HEAD"


async def _snapshot(url: str, tmp_path: Path) -> str:
    out = tmp_path / "snapshot.jsonl"
    with out.open("w", encoding="utf-8") as stream:
        await export(stream, url)
    return hashlib.sha256(out.read_bytes()).hexdigest()


async def test_the_viewer_cannot_write(url: str, tmp_path: Path) -> None:
    app = create_app(url)
    before = await _snapshot(url, tmp_path)
    path = history_store.HistoryStore(url).sqlalchemy_url.database
    file_before = Path(path).read_bytes() if url.startswith("sqlite") and path else None
    async with vs.client(app) as viewer:
        for page in [*EVERY_PAGE, "/api/sessions", "/api/search?q=oslo", "/api" + HOSTILE_PATH]:
            assert (await viewer.get(page)).status_code == 200, page
        reader: Reader = getattr(app.state, READER_STATE)
        for statement in [
            "INSERT INTO hs_sessions (session_id, created_at, updated_at) "
            "VALUES ('x', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
            "UPDATE hs_items SET text = 'changed'",
            "DELETE FROM hs_turns",
            "CREATE TABLE planted (x INTEGER)",
        ]:
            async with reader.connect() as connection:
                with pytest.raises(DBAPIError, match=r"(?i)read.?only"):
                    await connection.execute(sa.text(statement))
    assert await _snapshot(url, tmp_path) == before
    if file_before is not None:
        assert Path(path).read_bytes() == file_before  # not a page of the file changed


async def test_a_missing_sqlite_file_is_an_error_and_never_created(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    app = create_app(f"sqlite:///{missing}")
    with pytest.raises(DatabaseNotFoundError, match="no database at"):
        async with app.router.lifespan_context(app):
            pass
    assert not missing.exists()
    assert list(tmp_path.iterdir()) == []


async def test_request_values_are_only_data(url: str, viewer: httpx.AsyncClient) -> None:
    for hostile in ["' OR '1'='1", "x'); DROP TABLE hs_items; --", '"a" OR b*', "%", "$.x"]:
        for params in [
            {"prefix": hostile},
            {"meta": hostile},
            {"meta": "note", "meta_value": hostile},
            {"after": hostile},
        ]:
            response = await viewer.get("/api/sessions", params=params)
            assert response.status_code == 200, params
            found = response.json()["sessions"]
            if "after" in params:
                # A cursor compares as a string: "x'..." sorts after every id, the others
                # before them all.
                assert len(found) == (0 if hostile.startswith("x") else 5), params
            else:
                assert found == [], params
        # Search words are words, never query syntax: the same hits as the library finds
        # ('$.x' finds the stored "src=x", as a search for "x" does).
        for params in [{"q": hostile}, {"q": f"oslo {hostile}", "session": hostile}]:
            response = await viewer.get("/api/search", params=params)
            assert response.status_code == 200, params
            library = await history_store.search(params["q"], url, session_id=params.get("session"))
            assert len(response.json()["hits"]) == len(library), params
        assert (await viewer.get("/api/sessions/" + quote(hostile, safe=""))).status_code == 404
    # And the tables are all still there.
    document = (await viewer.get("/api/sessions")).json()
    assert len(document["sessions"]) == 5


async def test_a_token_guards_every_request(url: str) -> None:
    token = 'a "secret"; token'
    app = create_app(url, token=token)
    async with vs.client(app) as viewer:
        for path in ["/sessions", "/api/sessions", "/static/viewer.css", "/no/such/page"]:
            refused = await viewer.get(path)
            assert refused.status_code == 401, path
            assert "needs its token" in refused.text
        wrong = await viewer.get("/sessions", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert (await viewer.get("/sessions", params={"token": token[:-1]})).status_code == 401
        bearer = await viewer.get("/api/sessions", headers={"authorization": f"Bearer {token}"})
        assert bearer.status_code == 200 and len(bearer.json()["sessions"]) == 5
        assert "set-cookie" not in bearer.headers
        # Through the address: the page answers and sets a cookie holding a digest of the
        # token (not the token), which the page's own links then carry.
        first = await viewer.get("/sessions", params={"token": token})
        assert first.status_code == 200
        cookie = first.headers["set-cookie"]
        assert cookie.startswith("history_store_token=") and "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie and "secret" not in cookie
        follow = await viewer.get(f"/sessions/{vs.TOOLS_ID}")  # the client kept the cookie
        assert follow.status_code == 200
        viewer.cookies.clear()
        viewer.cookies.set("history_store_token", "forged")
        assert (await viewer.get("/sessions")).status_code == 401
        # A refused method is refused before the token is even looked at.
        assert (await viewer.post("/sessions")).status_code == 405


async def test_allowed_hosts_refuse_a_rebound_name(url: str) -> None:
    app = create_app(url, allowed_hosts=["127.0.0.1", "localhost"])
    async with vs.client(app) as viewer:
        assert (await viewer.get("/sessions")).status_code == 200
        rebound = await viewer.get("/sessions", headers={"host": "attacker.example"})
        assert rebound.status_code == 400
    with pytest.raises(history_store.InvalidArgumentError, match="token is empty"):
        create_app(url, token="")


async def test_requests_before_the_lifespan_open_the_database_once(url: str) -> None:
    """Mounted where no lifespan runs, the viewer opens its engine on the first request,
    once, however many requests arrive together."""
    app = create_app(url)
    transport = httpx.ASGITransport(app=app)
    reader: Reader = getattr(app.state, READER_STATE)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as viewer:
        responses = await asyncio.gather(*(viewer.get("/api/sessions") for _ in range(8)))
        assert [r.status_code for r in responses] == [200] * 8
        engine = reader._engine
        await viewer.get("/api/sessions")
        assert reader._engine is engine is not None
    await reader.stop()
    assert reader._engine is None
