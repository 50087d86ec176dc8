"""Browser tests: Playwright drives Debian's Chromium (`apt-get install chromium`).

`playwright install` cannot download browsers here, so the system Chromium is launched by
path with the flags of ops-tooling.md. Without it the tests skip on a laptop and fail under
`EMPORIUM_REQUIRE_REAL_BACKENDS=1` (CI), like every other real-backend test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.backends import require_real_backends
from tests.browser.flows import ADMIN_PASSWORD, admin_headers, stocked_product
from tests.e2e.platform import GATEWAY, running_platform, wait_healthy

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


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A running platform (one per module) with two stocked products (names -> ids)."""
    tmp: Path = tmp_path_factory.mktemp("browser")
    env = {"EMPORIUM_ADMIN_PASSWORD": ADMIN_PASSWORD, "EMPORIUM_GATEWAY_RATE_LIMIT": "1000"}
    with running_platform(tmp, env) as running:
        try:
            wait_healthy()
            with httpx.Client(base_url=GATEWAY, timeout=20.0) as client:
                admin = admin_headers(client)
                names = ("Zephyr Studio Headphones", 12999), ("Zephyr Travel Speaker", 4550)
                yield {n: stocked_product(client, admin, n, p)["id"] for n, p in names}
        except BaseException:
            print(running.log())
            raise


@pytest.fixture
def api() -> Iterator[httpx.Client]:
    """The public API, for the data a test starts from."""
    with httpx.Client(base_url=GATEWAY, timeout=20.0) as client:
        yield client
