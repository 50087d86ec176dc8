"""Browser tests: Playwright drives Debian's Chromium (`apt-get install chromium`).

`playwright install` cannot download browsers here, so the system Chromium is launched by
path with the flags of ops-tooling.md. Without it the tests skip on a laptop and fail under
`EMPORIUM_REQUIRE_REAL_BACKENDS=1` (CI), like every other real-backend test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.backends import require_real_backends

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """The Chromium to drive: `EMPORIUM_CHROMIUM`, else Debian's; skip/fail when absent."""
    found = os.environ.get("EMPORIUM_CHROMIUM") or shutil.which("chromium") or ""
    if found and os.access(found, os.X_OK):
        return found
    reason = "no Chromium: `apt-get install -y chromium` (or set EMPORIUM_CHROMIUM)"
    if require_real_backends():
        pytest.fail(f"EMPORIUM_REQUIRE_REAL_BACKENDS=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def _chromium_first() -> None:
    """Look for Chromium before any platform is started, so its absence is reported at once."""
    chromium_path()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per module, stopped with the module: Playwright's sync API runs its own
    event loop, which must be gone before any asyncio test of the session runs (so not the
    session-scoped browser of pytest-playwright)."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_FLAGS, headless=True
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh context (no cookies) per test."""
    context = browser.new_context()
    yield context.new_page()
    context.close()
