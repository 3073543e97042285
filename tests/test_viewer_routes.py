"""Every route of the web viewer through httpx's ASGI transport, on SQLite and PostgreSQL.

The database is the real one ``viewer_support.build`` writes through the store; pages are
checked for what a person would read, and each JSON address against the library function
it mirrors.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import viewer_support as vs
from starlette.applications import Starlette
from starlette.routing import Mount

import history_store
from history_store import HistoryStore
from history_store._json import to_json
from history_store.viewer import create_app


@pytest.fixture
async def url(db_url: str, tmp_path: Path) -> str:
    await vs.build(db_url, tmp_path)
    return db_url


@pytest.fixture
async def viewer(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with vs.client(create_app(url)) as client:
        yield client


def _session_path(session_id: str) -> str:
    return "/sessions/" + quote(session_id, safe="")


def _ids_on(html: str) -> list[str]:
    return re.findall(r'class="session-link" href="/sessions/([^"?#]+)', html)


async def _json(client: httpx.AsyncClient, path: str, **params: object) -> object:
    response = await client.get(path, params={k: str(v) for k, v in params.items()})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


async def test_sessions_page_lists_every_session_by_id(viewer: httpx.AsyncClient) -> None:
    response = await viewer.get("/sessions")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    expected = sorted([vs.HOSTILE_ID, "sales-1", "support-42", "support-7", vs.TOOLS_ID])
    assert _ids_on(response.text) == [quote(i, safe="") for i in expected]
    assert "<code>{&#34;customer&#34;: &#34;acme&#34;, &#34;tier&#34;: &#34;gold&#34;}</code>" in (
        response.text
    )


async def test_sessions_json_is_the_library_page(url: str, viewer: httpx.AsyncClient) -> None:
    for params in ({}, {"prefix": "support"}, {"meta": "customer"}, {"limit": 2}):
        library = {k: v for k, v in params.items() if k != "meta"}
        if "meta" in params:
            library["metadata_key"] = params["meta"]
        page = await history_store.sessions(url, **library)  # type: ignore[arg-type]
        expected = json.loads(to_json({"sessions": page.sessions, "next_after": page.next_after}))
        assert await _json(viewer, "/api/sessions", **params) == expected, params


async def test_sessions_filters(viewer: httpx.AsyncClient) -> None:
    async def ids(**params: object) -> list[str]:
        document = await _json(viewer, "/api/sessions", **params)
        assert isinstance(document, dict)
        return [s["session_id"] for s in document["sessions"]]

    assert await ids(prefix="support-") == ["support-42", "support-7"]
    assert await ids(prefix=" support-") == []  # values are taken as given, spaces too
    assert await ids(meta="customer") == ["support-42", "support-7"]
    assert await ids(meta="customer", meta_value="globex") == ["support-7"]
    assert await ids(meta="tier", meta_value="gold") == ["support-42"]
    assert await ids(meta="customer", meta_value="nobody") == []
    assert await ids(idle_days=300) == ["sales-1", "support-7"]  # idle since 2025
    assert await ids(idle_days=300, prefix="sales") == ["sales-1"]
    # The HTML page applies the same filters, and keeps them in its form.
    html = (await viewer.get("/sessions", params={"meta": "customer", "meta_value": "globex"})).text
    assert _ids_on(html) == ["support-7"]
    assert 'name="meta_value" value="globex"' in html
    empty = (await viewer.get("/sessions", params={"prefix": "zzz"})).text
    assert "No sessions match these filters." in empty


async def test_sessions_keyset_paging_follows_next_links(viewer: httpx.AsyncClient) -> None:
    seen: list[str] = []
    path = "/sessions?limit=2"
    pages = 0
    while path:
        html = (await viewer.get(path)).text
        seen += _ids_on(html)
        pages += 1
        found = re.search(r'class="next" rel="next" href="([^"]+)"', html)
        path = found.group(1).replace("&amp;", "&") if found else ""
    expected = sorted([vs.HOSTILE_ID, "sales-1", "support-42", "support-7", vs.TOOLS_ID])
    assert seen == [quote(i, safe="") for i in expected]
    assert pages == 3
    document = await _json(viewer, "/api/sessions", limit=2, after="sales-1")
    assert isinstance(document, dict)
    assert [s["session_id"] for s in document["sessions"]] == ["support-42", "support-7"]
    assert document["next_after"] == "support-7"


async def test_session_page_shows_turns_and_collapsed_tool_calls(
    viewer: httpx.AsyncClient,
) -> None:
    html = (await viewer.get(_session_path(vs.TOOLS_ID))).text
    assert re.findall(r'<section class="turn" id="turn-(\d+)">', html) == ["1", "2", "3", "4"]
    # The call is collapsed (no `open`), with its pretty-printed arguments and, inside it,
    # its output, which is not listed again on its own.
    call = html.split('<details class="item tool-call" id="item-2">', 1)[1].split("</details>\n")[0]
    assert '<code class="tool-name">get_weather</code>' in call
    assert '<pre class="arguments">{\n  &#34;city&#34;: &#34;Oslo&#34;,' in call
    assert '<pre class="output" id="item-3">{\n  &#34;temperature&#34;: -3,' in call
    assert 'id="item-3"' not in html.replace(call, "")
    assert '<article class="item message role-user" id="item-1">' in html
    assert "What is the weather in Oslo?" in html
    assert '<article class="item message role-assistant" id="item-4">' in html
    assert '<details class="item other" id="item-6">' in html  # reasoning
    assert "Bergen is rainy." in html
    assert '<details class="item tool-call" id="item-11">' in html  # hosted web search
    assert "web_search_call" in html
    assert '<input type="hidden" name="session" value="tools-1">' in html  # search it
    assert '<article class="item corrupt" id="item-14">' in html
    # No turn of this session is recorded in hs_turns: the page says so instead of guessing.
    assert html.count('<span class="badge status status-none">no status</span>') == 4
    assert "No usage recorded for the turns on this page." in html
    assert '<aside class="summary"' not in html


async def test_session_json_is_the_stored_items(url: str, viewer: httpx.AsyncClient) -> None:
    document = await _json(viewer, f"/api{_session_path('support-42')}")
    items = await history_store.show("support-42", url)
    assert isinstance(document, dict)
    assert document["items"] == json.loads(to_json(items))
    assert document["session"]["session_id"] == "support-42"
    assert document["session"]["metadata"] == {"customer": "acme", "tier": "gold"}
    assert document["tables"] == {"hs_turns": True, "hs_summaries": True}
    recorded = await history_store.turns("support-42", url)
    assert document["turns"] == json.loads(to_json(recorded))
    assert [turn["status"] for turn in document["turns"]] == ["completed", "completed"]
    assert document["summaries"] == []
    assert (document["previous_before"], document["next_after"]) == (None, None)


async def test_session_with_turn_tables_shows_status_usage_and_summaries(
    url: str, tmp_path: Path
) -> None:
    await vs.add_turn_tables(url)
    async with vs.client(create_app(url)) as viewer:
        html = (await viewer.get(_session_path(vs.TOOLS_ID))).text
        document = await _json(viewer, f"/api{_session_path(vs.TOOLS_ID)}")
    statuses = re.findall(r'<span class="badge status status-(\w+)">', html)
    assert statuses == ["completed", "failed", "blocked", "interrupted"]
    assert html.count('<span class="agent" title="agent">weather-agent</span>') == 3
    assert '<span class="model" title="model">llama3.2</span>' in html
    assert "120 in · 30 out · 150 total · 2 requests" in html
    assert '<span class="tokens none">no usage</span>' in html  # turn 3 recorded none
    # The chart has a bar per turn that recorded usage, scaled to the peak (turn 2: 280).
    bars = re.findall(r'<a href="#turn-(\d+)"><g class="bar">\s*<title>([^<]+)</title>', html)
    assert bars == [
        ("1", "turn 1: 120 input + 30 output tokens"),
        ("2", "turn 2: 200 input + 80 output tokens"),
        ("4", "turn 4: 90 input + 10 output tokens"),
    ]
    assert '<rect class="output" x="13.0" y="0.0" width="10" height="17.14">' in html  # 80/280
    # The summary of items 1-4 stands where it took effect: before item 5, marked.
    summary_at = html.index('<aside class="summary" id="summary-1-4">')
    assert html.index('id="item-4"') < summary_at < html.index('id="item-5"')
    assert "The user asked about Oslo: -3 °C, snow." in html
    assert isinstance(document, dict)
    assert document["tables"] == {"hs_turns": True, "hs_summaries": True}
    assert [t["status"] for t in document["turns"]] == [
        "completed",
        "failed",
        "blocked",
        "interrupted",
    ]
    assert document["turns"][0]["started_at"] == "2026-03-01T12:00:00+00:00"
    assert [(s["first_seq"], s["last_seq"]) for s in document["summaries"]] == [(1, 4)]


async def test_session_items_are_read_one_keyset_page_at_a_time(
    viewer: httpx.AsyncClient,
) -> None:
    path = f"/api{_session_path(vs.TOOLS_ID)}"

    async def page(**params: object) -> tuple[list[int], object, object]:
        document = await _json(viewer, path, **params)
        assert isinstance(document, dict)
        seqs = [item["seq"] for item in document["items"]]
        return seqs, document["previous_before"], document["next_after"]

    assert await page(limit=5) == ([1, 2, 3, 4, 5], None, 5)
    assert await page(limit=5, after=5) == ([6, 7, 8, 9, 10], 6, 10)
    assert await page(limit=5, after=10) == ([11, 12, 13, 14], 11, None)
    assert await page(limit=5, before=11) == ([6, 7, 8, 9, 10], 6, 10)
    assert await page(limit=5, before=6) == ([1, 2, 3, 4, 5], None, 5)
    assert await page(limit=5, turn=3) == ([10, 11, 12, 13, 14], 10, None)
    assert await page(limit=3, turn=2) == ([5, 6, 7], 5, 7)
    assert await page(limit=5, turn=99) == ([10, 11, 12, 13, 14], 10, None)  # the last page
    # The HTML pager links to exactly those cursors.
    html = (await viewer.get(_session_path(vs.TOOLS_ID), params={"limit": 5, "after": 5})).text
    base = _session_path(vs.TOOLS_ID)
    assert f'<a rel="prev" href="{base}?before=6&amp;limit=5">' in html
    assert f'<a rel="next" href="{base}?after=10&amp;limit=5">' in html
    assert f'<a href="{base}?before=15&amp;limit=5">last »</a>' in html
    assert '<span class="range">seq 6\u201310</span>' in html


async def test_search_page_marks_the_matched_words(url: str, viewer: httpx.AsyncClient) -> None:
    html = (await viewer.get("/search", params={"q": "OSLO"})).text
    assert html.count('<li class="hit">') == 3
    assert "What is the weather in <mark>Oslo</mark>?" in html
    assert "It is -3 °C and snowing in <mark>Oslo</mark>." in html
    assert f'href="{_session_path(vs.TOOLS_ID)}?turn=1#item-4"' in html
    two_words = (await viewer.get("/search", params={"q": "refund days"})).text
    assert "Your <mark>refund</mark> arrives in 3 <mark>days</mark>." in two_words
    assert "no matches" not in two_words
    none = (await viewer.get("/search", params={"q": "zebra"})).text
    assert "No item holds every word of <q>zebra</q>." in none
    assert '<li class="hit">' not in (await viewer.get("/search")).text  # just the form


async def test_search_json_is_the_library_search(url: str, viewer: httpx.AsyncClient) -> None:
    for params in ({"q": "refund"}, {"q": "oslo", "session": vs.TOOLS_ID, "limit": 2}):
        hits = await history_store.search(
            str(params["q"]),
            url,
            session_id=params.get("session"),  # type: ignore[arg-type]
            limit=int(params.get("limit", 50)),
        )
        expected = json.loads(to_json({"query": params["q"], "hits": hits}))
        assert await _json(viewer, "/api/search", **params) == expected
        assert hits


async def test_errors_are_pages_and_json(viewer: httpx.AsyncClient) -> None:
    missing = await viewer.get("/sessions/nobody")
    assert missing.status_code == 404
    assert "no session &#39;nobody&#39; in this database" in missing.text
    missing_json = await viewer.get("/api/sessions/nobody")
    assert missing_json.status_code == 404
    assert missing_json.json()["error"].startswith("no session 'nobody' in this database")
    for path, message in [
        ("/sessions?limit=abc", "limit must be a number, not &#39;abc&#39;"),
        ("/sessions?limit=0", "limit must be between 1 and 500, not 0"),
        ("/sessions?idle_days=-1", "idle_days must be between 0 and 100000, not -1"),
        ("/sessions?meta_value=x", "meta_value needs meta"),
        (f"{_session_path(vs.TOOLS_ID)}?limit=5000", "limit must be between 1 and 1000"),
        (f"{_session_path(vs.TOOLS_ID)}?after=x", "after must be a number"),
        (f"{_session_path(vs.TOOLS_ID)}?after={2**70}", "after must be between 0 and"),
        (f"{_session_path(vs.TOOLS_ID)}?turn={2**40}", "turn must be between 0 and"),
        ("/sessions?idle_days=nan", "idle_days must be between 0 and 100000, not nan"),
        ("/sessions?idle_days=inf", "idle_days must be between 0 and 100000, not inf"),
        ("/sessions?idle_days=1e9", "idle_days must be between 0 and 100000"),
    ]:
        response = await viewer.get(path)
        assert response.status_code == 400, path
        assert message in response.text, path
    no_words = await viewer.get("/api/search")
    assert (no_words.status_code, no_words.json()) == (
        400,
        {"error": "q is missing: give the words to search for"},
    )
    punctuation = await viewer.get("/api/search", params={"q": "?!"})
    assert punctuation.status_code == 200  # not query syntax: no word, no hit
    assert (await viewer.get("/nowhere")).status_code == 404


async def test_root_redirects_to_the_sessions_page(viewer: httpx.AsyncClient) -> None:
    response = await viewer.get("/?prefix=support")
    assert (response.status_code, response.headers["location"]) == (307, "/sessions?prefix=support")


async def test_assets_are_local_and_head_is_answered(viewer: httpx.AsyncClient) -> None:
    html = (await viewer.get(_session_path(vs.TOOLS_ID))).text
    references = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert references
    assert all(ref.startswith(("/", "#")) for ref in references), references
    assets = [ref for ref in references if ref.startswith("/static/")]
    assert sorted(assets) == ["/static/favicon.svg", "/static/viewer.css", "/static/viewer.js"]
    for asset in assets:
        response = await viewer.get(asset)
        assert response.status_code == 200, asset
        text = response.text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert "http://" not in text and "https://" not in text, asset
    head = await viewer.head("/sessions")
    assert (head.status_code, head.headers["content-type"]) == (200, "text/html; charset=utf-8")
    assert (await viewer.head("/static/viewer.css")).status_code == 200


@asynccontextmanager
async def _mounted(url: str) -> AsyncIterator[httpx.AsyncClient]:
    viewer = create_app(url)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with viewer.router.lifespan_context(viewer):
            yield

    outer = Starlette(routes=[Mount("/history", app=viewer)], lifespan=lifespan)
    async with vs.client(outer) as client:
        yield client


async def test_mounted_in_another_app_links_stay_under_its_path(url: str) -> None:
    async with _mounted(url) as client:
        html = (await client.get("/history/sessions")).text
        session = (await client.get(f"/history{_session_path('support-42')}")).text
        data = await _json(client, f"/history/api{_session_path('support-42')}")
        css = await client.get("/history/static/viewer.css")
    assert 'href="/history/static/viewer.css"' in html
    assert 'class="session-link" href="/history/sessions/support-42"' in html
    assert f'class="json-link" href="/history/api{_session_path("support-42")}"' in session
    assert isinstance(data, dict) and len(data["items"]) == 8
    assert css.status_code == 200


async def test_an_open_store_or_an_in_memory_one_can_be_viewed(url: str) -> None:
    async with HistoryStore(url) as store, vs.client(create_app(store)) as viewer:
        document = await _json(viewer, "/api/sessions", prefix="sales")
    assert isinstance(document, dict) and [s["session_id"] for s in document["sessions"]] == [
        "sales-1"
    ]
    async with HistoryStore("sqlite+aiosqlite:///:memory:") as memory:
        await memory.session("here").add_items([vs.user("in memory")])
        async with vs.client(create_app(memory)) as viewer:
            page = (await viewer.get("/sessions/here")).text
    assert "in memory" in page


async def test_a_session_id_with_slashes_and_markup_has_its_own_page(
    viewer: httpx.AsyncClient,
) -> None:
    response = await viewer.get(_session_path(vs.HOSTILE_ID))
    assert response.status_code == 200
    assert '<h1 class="session-title">evil/&lt;b&gt;&#34;id&#34;&lt;/b&gt;&amp;amp;</h1>' in (
        response.text
    )
    document = await _json(viewer, f"/api{_session_path(vs.HOSTILE_ID)}")
    assert isinstance(document, dict) and document["session"]["session_id"] == vs.HOSTILE_ID
