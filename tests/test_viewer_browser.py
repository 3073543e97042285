"""The viewer in a real browser: Playwright for Python driving Debian's Chromium
(``/usr/bin/chromium``; never a browser Playwright downloads) against ``history-store serve``.

A person's path: the sessions page, a filter, a search, a hit, a session, a tool call
expanded. Screenshots of each step go to ``tests/artifacts/browser/``. Without Chromium (or
Playwright) these tests skip and say why, unless ``HISTORY_STORE_TEST_BROWSER=1`` (set by
``.ci/run``), which makes that a failure.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import viewer_support as vs

CHROMIUM = Path(os.environ.get("HISTORY_STORE_TEST_CHROMIUM", "/usr/bin/chromium"))
BROWSER_ENV = "HISTORY_STORE_TEST_BROWSER"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "browser"
PROGRAM = str(Path(sys.executable).with_name("history-store"))
# Chromium as root needs --no-sandbox; the rest keeps it from reaching for the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-gpu",
]


def _unavailable() -> str | None:
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _unavailable()
    if reason is not None:
        if os.environ.get(BROWSER_ENV) == "1":
            pytest.fail(f"{BROWSER_ENV}=1 but {reason}")
        pytest.skip(f"{reason}; set {BROWSER_ENV}=1 to require the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def address(tmp_path: Path) -> Iterator[str]:
    """``history-store serve`` on the viewer fixture (with turn and summary tables)."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"

    async def fill() -> None:
        await vs.build(database, tmp_path)
        await vs.add_turn_tables(database)

    # Playwright's sync API keeps an event loop running on this thread: fill on another.
    with ThreadPoolExecutor(1) as worker:
        worker.submit(asyncio.run, fill()).result()
    process = subprocess.Popen(
        [PROGRAM, "--url", database, "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert " read-only at " in first, process.stderr.read() if process.stderr else first
        yield first.rsplit(" at ", 1)[1].strip()
    finally:
        process.terminate()
        process.wait(30)


class Visit:
    """A page that records every request and console error, and saves screenshots."""

    def __init__(self, browser: Any, name: str) -> None:
        self.context = browser.new_context(viewport={"width": 1200, "height": 900})
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.problems: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on(
            "console",
            lambda message: self.problems.append(message.text) if message.type == "error" else None,
        )
        self.page.on("pageerror", lambda error: self.problems.append(str(error)))
        self.page.on("dialog", lambda dialog: self.problems.append(f"dialog: {dialog.message}"))
        self.folder = ARTIFACTS / name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shots = 0

    def shot(self, label: str) -> None:
        self.shots += 1
        self.page.screenshot(
            path=str(self.folder / f"{self.shots:02d}-{label}.png"), full_page=True
        )

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser: Any, request: pytest.FixtureRequest) -> Iterator[Visit]:
    opened = Visit(browser, request.node.name)
    try:
        yield opened
    finally:
        opened.close()


def test_a_person_finds_a_tool_call_and_opens_it(address: str, visit: Visit) -> None:
    page = visit.page
    page.goto(address + "sessions")
    rows = page.locator("table.sessions tbody tr")
    assert rows.count() == 5
    assert page.locator("a.session-link").all_inner_texts() == sorted(
        [vs.HOSTILE_ID, "sales-1", "support-42", "support-7", vs.TOOLS_ID]
    )
    visit.shot("sessions")

    page.fill("input[name=prefix]", "support")
    page.click("#session-filters button[type=submit]")
    page.wait_for_url("**/sessions?prefix=support*")
    assert page.locator("a.session-link").all_inner_texts() == ["support-42", "support-7"]
    visit.shot("filtered")

    page.fill("header.top input[name=q]", "Oslo")
    page.press("header.top input[name=q]", "Enter")
    page.wait_for_url("**/search?q=Oslo")
    assert page.locator("li.hit").count() == 3
    assert page.locator("li.hit mark").all_inner_texts() == ["Oslo", "Oslo", "Oslo"]
    visit.shot("search")

    page.locator("li.hit a.session-link").first.click()
    page.wait_for_url(f"**/sessions/{vs.TOOLS_ID}?turn=1#item-1")
    assert page.locator("h1.session-title").inner_text() == vs.TOOLS_ID
    headings = page.locator("section.turn h2").all_inner_texts()
    assert headings == ["Turn 1", "Turn 2", "Turn 3", "Turn 4"]
    statuses = page.locator("section.turn .badge.status").all_inner_texts()
    assert statuses == ["COMPLETED", "FAILED", "BLOCKED", "INTERRUPTED"]  # CSS upper-cases
    assert page.locator("svg.chart g.bar").count() == 3
    assert (
        page.locator("aside.summary")
        .inner_text()
        .endswith("The user asked about Oslo: -3 °C, snow.")
    )

    call = page.locator("details.tool-call#item-2")
    arguments = call.locator("pre.arguments")
    assert not arguments.is_visible()  # collapsed until asked
    visit.shot("session")
    call.locator(":scope > summary").click()
    assert arguments.is_visible()
    assert '"city": "Oslo"' in arguments.inner_text()
    output = call.locator("pre.output")
    assert output.is_visible() and '"temperature": -3' in output.inner_text()
    assert not page.locator("details.tool-call#item-7 pre.arguments").is_visible()
    visit.shot("tool-call-open")

    page.click("button.expand-all")
    assert page.locator("details.item:not([open])").count() == 0
    page.click("button.collapse-all")
    assert page.locator("details.item[open]").count() == 0

    # A link to an output inside a collapsed call opens the call.
    page.goto(address + f"sessions/{vs.TOOLS_ID}#item-8")
    assert page.locator("pre.output#item-8").is_visible()
    assert "rain, 6 degrees" in page.locator("pre.output#item-8").inner_text()

    assert visit.problems == []
    assert all(url.startswith(address.rstrip("/")) for url in visit.requests), visit.requests


def test_stored_script_stays_text_in_the_browser(address: str, visit: Visit) -> None:
    page = visit.page
    page.goto(address + "sessions/" + quote(vs.HOSTILE_ID, safe=""))
    page.click("button.expand-all")
    visit.shot("hostile")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("h1.session-title").inner_text() == vs.HOSTILE_ID
    first = page.locator("article.item.message.role-user .text").inner_text()
    assert first == f"look: {vs.SCRIPT} <img src=x onerror=alert(1)>"
    assert page.locator("main img").count() == 0 and page.locator("main script").count() == 0
    page.goto(address + "search?q=look")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    visit.shot("hostile-search")
    assert visit.problems == []
