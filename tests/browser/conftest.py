"""Browser wiring: the app served on a real port, driven by Debian's headless Chromium.

The browser tests skip, with a message, when Chromium is missing on a developer's machine;
under CI=true a missing Chromium fails them, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from werkzeug.serving import make_server

from tests.worlds.browser import CHROMIUM_ARGS, MISSING_CHROMIUM
from tests.worlds.config import chromium_path

# Waits, not time limits: on a busy CI machine a page that needs 6 s to answer is slow, not
# wrong, so an expectation waits up to 30 s before it fails (a pass returns at once).
expect.set_options(timeout=30_000)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of Chromium: skipped without it, except under CI=true, where that fails."""
    path = chromium_path()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{MISSING_CHROMIUM} (CI=true: the browser tests may not be skipped)")
        pytest.skip(MISSING_CHROMIUM)
    return path


@pytest.fixture(scope="session")
def playwright_driver(chromium: str) -> Iterator[Playwright]:
    """Playwright's sync API, for the whole session."""
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_driver: Playwright, chromium: str) -> Iterator[Browser]:
    """One headless Chromium for the whole session."""
    browser = playwright_driver.chromium.launch(
        executable_path=chromium, headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@pytest.fixture
def live_server(committed_app: Flask) -> Iterator[str]:
    """The app on a free local port (real commits on the suite database); its base URL."""
    server = make_server("127.0.0.1", 0, committed_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@pytest.fixture
def page(browser: Browser, live_server: str) -> Iterator[Page]:
    """A fresh page in a context of its own (no cookies), addressed relative to the server."""
    context = browser.new_context(base_url=live_server)
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def sign_in(page: Page) -> Callable[[str, str], None]:
    """Fill in and submit the sign-in form."""

    def submit(username: str, password: str) -> None:
        page.goto("/login")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()

    return submit
