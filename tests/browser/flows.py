"""What the browser tests do again and again: set up data through the public API, and the
shopper's and administrator's steps in the pages."""

from __future__ import annotations

import io
import re
import time
import uuid
from collections.abc import Callable

import httpx
from axe_playwright_python.sync_playwright import Axe
from PIL import Image
from playwright.sync_api import Locator, Page, expect

from tests.e2e.platform import GATEWAY

ADMIN_EMAIL = "admin@emporium.local"
ADMIN_PASSWORD = "browser-admin-password-0123"
SHOPPER_PASSWORD = "correct horse battery"
EVENTUAL_SECONDS = 20.0
ADDRESS = {"line1": "1 Main Street", "city": "Springfield", "postal_code": "12345", "country": "US"}


def png(colour: tuple[int, int, int] = (200, 160, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), colour).save(out, format="PNG")
    return out.getvalue()


def wait_until_image_loaded(page: Page, image: Locator, width: int | None = None) -> None:
    """Until the browser has decoded `image` (of `width` pixels, when given); a broken or
    never-arriving image times the test out. A single check right after the element shows
    races the download (the CDN resizes on first request)."""
    page.wait_for_function(
        "([img, width]) => img.complete && img.naturalWidth > 0"
        " && (width === null || img.naturalWidth === width)",
        arg=[image.element_handle(), width],
        timeout=EVENTUAL_SECONDS * 1000,
    )


def api_login(client: httpx.Client, email: str, password: str) -> dict[str, str]:
    answer = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def admin_headers(client: httpx.Client) -> dict[str, str]:
    return api_login(client, ADMIN_EMAIL, ADMIN_PASSWORD)


def stocked_product(
    client: httpx.Client,
    admin: dict[str, str],
    name: str,
    price: int,
    category: str = "audio",
    on_hand: int = 50,
) -> dict[str, str]:
    """A new product with stock, as the API returns it."""
    sku = f"WEB-{uuid.uuid4().hex[:10]}"
    body = {
        "sku": sku,
        "name": name,
        "description": f"{name}, made for the browser test.",
        "category": category,
        "price_minor": price,
        "currency": "USD",
    }
    made = client.post("/api/v1/products", json=body, headers=admin)
    assert made.status_code == 201, made.text
    stock = client.put(f"/api/v1/inventory/{sku}", json={"on_hand": on_hand}, headers=admin)
    assert stock.status_code == 200, stock.text
    product: dict[str, str] = made.json()
    return product


def api_shopper_buys(client: httpx.Client, items: dict[str, int]) -> str:
    """A new shopper pays for `items` (product id -> quantity) with `tok_visa`; the order id
    once it is PAID."""
    email = f"api-{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "password": SHOPPER_PASSWORD, "name": "Api Shopper"}
    assert client.post("/api/v1/auth/register", json=body).status_code == 201
    user = api_login(client, email, SHOPPER_PASSWORD)
    order = {
        "items": [{"product_id": p, "quantity": q} for p, q in items.items()],
        "payment_token": "tok_visa",
        "shipping_address": ADDRESS,
    }
    headers = {**user, "Idempotency-Key": str(uuid.uuid4())}
    placed = client.post("/api/v1/orders", json=order, headers=headers)
    assert placed.status_code in (201, 202), placed.text
    order_id: str = placed.json()["id"]
    eventually(
        lambda: client.get(f"/api/v1/orders/{order_id}", headers=user).json()["status"] == "PAID",
        f"order {order_id} not PAID",
    )
    return order_id


def eventually(check: Callable[[], bool], what: str, seconds: float = EVENTUAL_SECONDS) -> None:
    """Eventually consistent views: check again until `check()` holds."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


def reload_until(page: Page, check: Callable[[], bool], what: str) -> None:
    def reloaded() -> bool:
        if check():
            return True
        page.reload()
        return False

    eventually(reloaded, what)


def register(page: Page) -> None:
    page.goto(f"{GATEWAY}/")
    page.get_by_role("link", name="Register").click()
    page.get_by_label("Name").fill("Ada Shopper")
    page.get_by_label("Email").fill(f"ada-{uuid.uuid4().hex[:8]}@example.com")
    page.get_by_label("Password").fill(SHOPPER_PASSWORD)
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def sign_in(page: Page, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> None:
    page.goto(f"{GATEWAY}/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def search_until_found(page: Page, query: str, name: str) -> None:
    """The search view is eventually consistent: search again until the product shows."""

    def found() -> bool:
        page.get_by_role("searchbox", name="Search products").fill(query)
        page.get_by_role("button", name="Search", exact=True).click()
        return page.get_by_role("link", name=name).count() > 0

    eventually(found, f"{name!r} not found by {query!r}")


def add_to_cart(page: Page, quantity: int) -> None:
    page.get_by_label("Quantity").fill(str(quantity))
    page.get_by_role("button", name="Add to cart").click()
    expect(page).to_have_url(re.compile(r"/cart$"))


def check_out(page: Page, card: str) -> None:
    page.get_by_role("link", name="Check out").click()
    page.get_by_label("Street and number").fill(ADDRESS["line1"])
    page.get_by_label("City").fill(ADDRESS["city"])
    page.get_by_label("Postal code").fill(ADDRESS["postal_code"])
    page.get_by_label("Country (two letters)").fill(ADDRESS["country"])
    page.get_by_label(card).check()
    page.get_by_role("button", name="Place order").click()
    expect(page).to_have_url(re.compile(r"/orders/[^/]+$"))


def serious_violations(axe: Axe, page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now."""
    return [
        f"{v['id']}: {v['help']}"
        for v in axe.run(page).response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
