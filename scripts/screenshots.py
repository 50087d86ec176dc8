"""Screenshots of the storefront and the console into docs/screenshots/ (PNG).

    .venv/bin/python scripts/screenshots.py            # starts `emporium up` with the demo
    EMPORIUM_ADMIN_PASSWORD=... .venv/bin/python scripts/screenshots.py   # `make up` running

With a platform already answering at http://127.0.0.1:8080 (its administrator's password in
`EMPORIUM_ADMIN_PASSWORD`) the pictures are taken there; otherwise the script starts one
the way `make up` does (with the demo catalog) in a temporary directory and stops it after.
It then shops like a visitor (a paid order feeds best sellers, recommendations and the
reports) and drives Debian's Chromium (`apt-get install -y chromium`) through Playwright.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from PIL import Image
from playwright.sync_api import Page, ViewportSize, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import CHROMIUM_FLAGS  # noqa: E402
from tests.browser.flows import ADDRESS, add_to_cart, check_out, register  # noqa: E402
from tests.e2e.platform import GATEWAY, running_platform, wait_healthy  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
MAX_BYTES = 300 * 1024
DEMO_PRODUCTS = 200


def healthy(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{url}/api/v1/health", timeout=3).status_code == 200
    return False


@contextlib.contextmanager
def platform() -> Iterator[str]:
    """The administrator's password of a running platform, or of one started here."""
    if healthy(GATEWAY):
        password = os.environ.get("EMPORIUM_ADMIN_PASSWORD", "")
        if not password:
            sys.exit("a platform is running: set EMPORIUM_ADMIN_PASSWORD to its admin's password")
        yield password
        return
    password = secrets.token_urlsafe(18)
    env = {"EMPORIUM_ADMIN_PASSWORD": password, "EMPORIUM_GATEWAY_RATE_LIMIT": "1000"}
    with (
        tempfile.TemporaryDirectory(prefix="emporium-shots-") as tmp,
        running_platform(Path(tmp), env, demo=True) as running,
    ):
        try:
            wait_healthy()
            yield password
        except BaseException:
            print(running.log()[-4000:], file=sys.stderr)
            raise


def wait_for_demo(client: httpx.Client, seconds: float = 180.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = client.get("/api/v1/search", params={"limit": 1})
        if answer.status_code == 200 and answer.json()["total"] >= DEMO_PRODUCTS:
            return
        time.sleep(1)
    print("the demo catalog is not complete: taking the pictures anyway", file=sys.stderr)


def in_stock(client: httpx.Client, sku: str, enough: int = 10) -> bool:
    answer = client.get(f"/api/v1/inventory/{sku}")
    return answer.status_code == 200 and answer.json()["available"] >= enough


def prepare(client: httpx.Client, password: str) -> dict[str, str]:
    """Orders for the reports and recommendations; a low-stock crossing. Ids to show."""
    login = {"email": "admin@emporium.local", "password": password}
    token = client.post("/api/v1/auth/login", json=login).json()["access_token"]
    admin = {"Authorization": f"Bearer {token}"}
    audio = client.get("/api/v1/products", params={"category": "audio", "limit": 20}).json()
    items = [p for p in audio["items"] if in_stock(client, p["sku"])]
    assert len(items) >= 3, "not three demo products in stock in `audio`"
    low = items[2]
    client.put(
        f"/api/v1/inventory/{low['sku']}",
        json={"on_hand": 5, "low_stock_threshold": 3},
        headers=admin,
    )
    shopper = {"email": f"shots-{uuid.uuid4().hex[:8]}@example.com", "password": "screenshots-1"}
    client.post("/api/v1/auth/register", json={**shopper, "name": "Screenshot Shopper"})
    user = client.post("/api/v1/auth/login", json=shopper).json()["access_token"]
    for basket in ({items[0]["id"]: 2, items[1]["id"]: 1}, {low["id"]: 3, items[0]["id"]: 1}):
        client.post(
            "/api/v1/orders",
            json={
                "items": [{"product_id": p, "quantity": q} for p, q in basket.items()],
                "payment_token": "tok_visa",
                "shipping_address": ADDRESS,
            },
            headers={"Authorization": f"Bearer {user}", "Idempotency-Key": str(uuid.uuid4())},
        )
    time.sleep(3)  # the eventually consistent views (API.md: within 2 seconds)
    return {"product": items[0]["id"], "other": items[1]["id"], "password": password}


def shoot(page: Page, name: str, path: str | None = None, whole: bool = False) -> None:
    """The viewport (or the `whole` page) as docs/screenshots/<name>.png."""
    if path is not None:
        page.goto(f"{GATEWAY}{path}")
    page.wait_for_load_state("networkidle")
    target = OUT / f"{name}.png"
    raw = page.screenshot(full_page=whole)
    image = Image.open(io.BytesIO(raw)).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    if out.tell() > MAX_BYTES:  # a palette keeps photos of flat UI small
        out = io.BytesIO()
        image.quantize(colors=128).save(out, format="PNG", optimize=True)
    target.write_bytes(out.getvalue())
    print(f"{target.relative_to(ROOT)}: {out.tell() // 1024} KiB")


def take(ids: dict[str, str], chromium: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        phone = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
        shoot(phone.new_page(), "home-phone", "/")
        phone.close()

        context = browser.new_context(viewport=DESKTOP)
        page = context.new_page()
        shoot(page, "home", "/")
        shoot(page, "category", "/category/audio")
        shoot(page, "search", "/search?q=headphnes&sort=price_asc")
        register(page)
        shoot(page, "product", f"/products/{ids['product']}")
        add_to_cart(page, 2)
        page.goto(f"{GATEWAY}/products/{ids['other']}")
        add_to_cart(page, 1)
        shoot(page, "cart")
        shoot(page, "checkout", "/checkout")
        page.goto(f"{GATEWAY}/cart")
        check_out(page, "Visa ending 4242 (succeeds)")
        page.wait_for_url(re.compile(r"/orders/"))
        page.get_by_text("PAID").first.wait_for(timeout=30_000)
        shoot(page, "order")
        context.close()

        admin = browser.new_context(viewport=DESKTOP)
        page = admin.new_page()
        page.goto(f"{GATEWAY}/signin")
        page.get_by_label("Email").fill("admin@emporium.local")
        page.get_by_label("Password").fill(ids["password"])
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("button", name="Sign out").wait_for()
        shoot(page, "console-products", "/admin")
        shoot(page, "console-stock", "/admin/stock")
        since = (datetime.now(UTC) - timedelta(days=13)).date()
        shoot(page, "console-analytics", f"/admin/analytics?from={since}", whole=True)
        admin.close()
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    chromium = os.environ.get("EMPORIUM_CHROMIUM", "/usr/bin/chromium")
    parser.add_argument("--chromium", default=chromium, help=f"default {chromium}")
    args = parser.parse_args()
    with platform() as password, httpx.Client(base_url=GATEWAY, timeout=30) as client:
        wait_for_demo(client)
        take(prepare(client, password), args.chromium)


if __name__ == "__main__":
    main()
