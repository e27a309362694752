"""Browser tests of the window's UI: Debian's Chromium, driven by Playwright, against the real
local API on loopback with a temporary data directory.

The page's CSP forbids eval, so waits go through locators and `expect` (Playwright's
`wait_for_function` with a string would be blocked); `page.evaluate` with a function works.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, Playwright, expect, sync_playwright

from tests.servers import ROOT, Running, local_settings, serve

CHROMIUM = os.environ.get("FERRY_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "ui"


@pytest.fixture(scope="session")
def playwright_session() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: ./ferry.sh test installs Debian's chromium package")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright_session: Playwright) -> Iterator[Browser]:
    browser = playwright_session.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
    try:
        yield browser
    finally:
        browser.close()


@dataclass
class UI:
    """A local API and a browser context signed in to it; `requests` holds every URL asked for."""

    app: Running
    browser: Browser
    requests: list[str] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)

    def open_page(self, width: int = 1100, height: int = 720) -> Page:
        context = self.browser.new_context(viewport={"width": width, "height": height})
        context.on("request", lambda request: self.requests.append(request.url))
        page = context.new_page()
        page.set_default_timeout(10_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.ferry_errors = errors  # type: ignore[attr-defined]
        page.goto(f"{self.app.url}/?token={self.app.token}")
        # The first view is on screen once the count is written (tasks.js onTotal).
        page.locator("#task-count").filter(has_text="task").wait_for()
        self.pages.append(page)
        return page

    def api(self) -> httpx.Client:
        return self.app.client()

    def foreign_requests(self) -> list[str]:
        return [url for url in self.requests if urlsplit(url).hostname not in ("127.0.0.1", "localhost")]


@contextmanager
def browser_on(app: Running, browser: Browser) -> Iterator[UI]:
    """Pages on `app`; on the way out they are closed, and none may have thrown."""
    harness = UI(app, browser)
    try:
        yield harness
    finally:
        errors = []
        for page in harness.pages:
            errors += getattr(page, "ferry_errors", [])
            page.context.close()
        assert not errors, f"the page threw: {errors}"


@pytest.fixture
def ui(browser: Browser, tmp_path: Path) -> Iterator[UI]:
    with serve(local_settings(tmp_path / "local")) as app, browser_on(app, browser) as harness:
        yield harness


@pytest.fixture
def page(ui: UI) -> Page:
    return ui.open_page()


def screenshot(page: Page, name: str) -> Path:
    """Saves a PNG under test-artifacts/ui/ (CI keeps them; look at them)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def clean_artifacts() -> None:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)


# -- the lists: rows are positioned by index, so DOM order may differ from list order ----------


def rows(page: Page, kind: str) -> Locator:
    """The rows of the `kind` ("task" or "note") list on screen; placeholders of pages still
    loading have no data-id."""
    return page.locator(f"#{kind}-list .row[data-id]")


def row(page: Page, title: str, kind: str) -> Locator:
    exact = page.locator(".title").filter(has_text=re.compile(rf"^{re.escape(title)}$"))
    return rows(page, kind).filter(has=exact)


def shown_titles(page: Page, kind: str) -> list[str]:
    """The titles in list order."""
    return page.evaluate(
        """(kind) => [...document.querySelectorAll(`#${kind}-list .row[data-id]`)]
              .sort((a, b) => Number(a.dataset.index) - Number(b.dataset.index))
              .map((r) => r.querySelector('.title').textContent)""",
        kind,
    )


def eventually(read: Callable[[], Any], expected: Any, timeout: float = 5.0) -> None:
    """Polls `read()` until it returns `expected` (bounded), else fails showing the last value."""
    deadline = time.monotonic() + timeout
    while True:
        got = read()
        if got == expected:
            return
        if time.monotonic() > deadline:
            assert got == expected
        time.sleep(0.05)


def expect_titles(page: Page, titles: list[str], kind: str) -> None:
    expect(rows(page, kind)).to_have_count(len(titles))
    eventually(lambda: shown_titles(page, kind), titles)
