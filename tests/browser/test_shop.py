"""A shopper in a real browser, on the platform started as `make up` starts it: registers,
finds a product despite a typo, fills the cart, pays with `tok_visa` and watches the order
become PAID with its receipt among the notifications; a declined card says so clearly."""

from __future__ import annotations

import io
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from PIL import Image
from playwright.sync_api import Page, expect

from tests.e2e.platform import GATEWAY, running_platform, wait_healthy

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ADMIN_EMAIL = "admin@emporium.local"
ADMIN_PASSWORD = "browser-admin-password-0123"
EVENTUAL_SECONDS = 20.0


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 160, 40)).save(out, format="PNG")
    return out.getvalue()


def api_login(client: httpx.Client, email: str, password: str) -> dict[str, str]:
    answer = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def stocked_product(client: httpx.Client, admin: dict[str, str], name: str, price: int) -> str:
    sku = f"WEB-{uuid.uuid4().hex[:10]}"
    body = {
        "sku": sku,
        "name": name,
        "description": f"{name}, made for the browser test.",
        "category": "audio",
        "price_minor": price,
        "currency": "USD",
    }
    made = client.post("/api/v1/products", json=body, headers=admin)
    assert made.status_code == 201, made.text
    stock = client.put(f"/api/v1/inventory/{sku}", json={"on_hand": 50}, headers=admin)
    assert stock.status_code == 200, stock.text
    product_id: str = made.json()["id"]
    return product_id


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A running platform with two stocked products (names -> ids)."""
    tmp: Path = tmp_path_factory.mktemp("browser")
    env = {"EMPORIUM_ADMIN_PASSWORD": ADMIN_PASSWORD, "EMPORIUM_GATEWAY_RATE_LIMIT": "1000"}
    with running_platform(tmp, env) as running:
        try:
            wait_healthy()
            with httpx.Client(base_url=GATEWAY, timeout=20.0) as client:
                admin = api_login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
                yield {
                    "Zephyr Studio Headphones": stocked_product(
                        client, admin, "Zephyr Studio Headphones", 12999
                    ),
                    "Zephyr Travel Speaker": stocked_product(
                        client, admin, "Zephyr Travel Speaker", 4550
                    ),
                }
        except BaseException:
            print(running.log())
            raise


def register(page: Page) -> None:
    page.goto(f"{GATEWAY}/")
    page.get_by_role("link", name="Register").click()
    page.get_by_label("Name").fill("Ada Shopper")
    page.get_by_label("Email").fill(f"ada-{uuid.uuid4().hex[:8]}@example.com")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def search_until_found(page: Page, query: str, name: str) -> None:
    """The search view is eventually consistent: search again until the product shows."""
    deadline = time.monotonic() + EVENTUAL_SECONDS
    while True:
        page.get_by_role("searchbox", name="Search products").fill(query)
        page.get_by_role("button", name="Search", exact=True).click()
        if page.get_by_role("link", name=name).count():
            return
        assert time.monotonic() < deadline, f"{name!r} not found by {query!r}"
        time.sleep(0.5)


def add_to_cart(page: Page, quantity: int) -> None:
    page.get_by_label("Quantity").fill(str(quantity))
    page.get_by_role("button", name="Add to cart").click()
    expect(page).to_have_url(re.compile(r"/cart$"))


def check_out(page: Page, card: str) -> None:
    page.get_by_role("link", name="Check out").click()
    page.get_by_label("Street and number").fill("1 Main Street")
    page.get_by_label("City").fill("Springfield")
    page.get_by_label("Postal code").fill("12345")
    page.get_by_label("Country (two letters)").fill("US")
    page.get_by_label(card).check()
    page.get_by_role("button", name="Place order").click()
    expect(page).to_have_url(re.compile(r"/orders/[^/]+$"))


def test_a_shopper_buys_two_items_and_gets_a_receipt(shop: dict[str, str], page: Page) -> None:
    register(page)
    search_until_found(page, "headphnes", "Zephyr Studio Headphones")
    page.get_by_role("link", name="Zephyr Studio Headphones").click()
    expect(page.get_by_test_id("price")).to_have_text("129.99 USD")
    expect(page.get_by_text("In stock")).to_be_visible()
    add_to_cart(page, 2)

    page.goto(f"{GATEWAY}/products/{shop['Zephyr Travel Speaker']}")
    add_to_cart(page, 1)
    page.reload()  # the cart survives a reload
    expect(page.get_by_test_id("cart-count")).to_have_text("3")
    expect(page.get_by_test_id("cart-total")).to_have_text("305.48 USD")

    check_out(page, "Visa ending 4242 (succeeds)")
    expect(page.get_by_test_id("order-status")).to_have_text("PAID", timeout=30_000)
    expect(page.get_by_test_id("cart-count")).to_have_text("0")

    page.get_by_role("link", name="Orders", exact=True).click()
    expect(page.get_by_text("PAID")).to_be_visible()
    deadline = time.monotonic() + EVENTUAL_SECONDS
    page.get_by_role("link", name="Notifications").click()
    while not page.locator("[data-kind=payment_receipt]").count():
        assert time.monotonic() < deadline, "no payment receipt among the notifications"
        time.sleep(0.5)
        page.reload()


def test_a_declined_card_says_so(shop: dict[str, str], page: Page) -> None:
    register(page)
    page.goto(f"{GATEWAY}/products/{shop['Zephyr Travel Speaker']}")
    add_to_cart(page, 1)
    check_out(page, "Card that is declined")
    expect(page.get_by_test_id("order-status")).to_have_text("CANCELLED", timeout=30_000)
    expect(page.get_by_role("alert")).to_have_text(re.compile("declined", re.IGNORECASE))


def test_pages_are_safe_and_a_missing_one_is_a_404(shop: dict[str, str], page: Page) -> None:
    answer = page.goto(f"{GATEWAY}/no/such/page")
    assert answer is not None
    assert answer.status == 404
    expect(page.get_by_role("heading", name="Page not found.")).to_be_visible()
    home = page.goto(f"{GATEWAY}/")
    assert home is not None
    policy = home.headers["content-security-policy"]
    assert "unsafe-inline" not in policy
    assert "script-src 'self'" in policy
    api = httpx.get(f"{GATEWAY}/api/v1/nothing-here")
    assert api.headers["content-type"].startswith("application/problem+json")


def sign_in(page: Page, email: str, password: str) -> None:
    page.goto(f"{GATEWAY}/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_an_admin_adds_a_product_that_the_shop_then_finds(
    shop: dict[str, str], page: Page, tmp_path: Path
) -> None:
    image = tmp_path / "lamp.png"
    image.write_bytes(png())
    sku = f"LAMP-{uuid.uuid4().hex[:8]}"
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.get_by_role("link", name="Console").click()
    new = page.get_by_role("region", name="New product")
    new.get_by_label("SKU").fill(sku)
    new.get_by_label("Name").fill("Quasar Reading Lamp")
    new.get_by_label("Description").fill("A lamp for the night owl.")
    new.get_by_label("Category").fill("home")
    new.get_by_label("Price in cents").fill("3900")
    new.get_by_label("Image (JPEG, PNG or WebP)").set_input_files(str(image))
    new.get_by_role("button", name="Create product").click()
    expect(page.get_by_test_id("admin-message")).to_have_text("Created Quasar Reading Lamp.")

    stock = page.get_by_role("region", name="Stock")
    stock.get_by_label("SKU").fill(sku)
    stock.get_by_label("On hand").fill("7")
    stock.get_by_label("Low-stock threshold").fill("2")
    stock.get_by_role("button", name="Set stock").click()
    expect(page.get_by_test_id("admin-message")).to_have_text(f"Stock of {sku}: 7 available.")

    search_until_found(page, "quasar lamp", "Quasar Reading Lamp")
    page.get_by_role("link", name="Quasar Reading Lamp").click()
    expect(page.get_by_text("In stock")).to_be_visible()
    picture = page.get_by_role("img", name="Quasar Reading Lamp")
    expect(picture).to_have_attribute("srcset", re.compile(r"\?w=240 240w"))
    assert picture.evaluate("img => img.complete && img.naturalWidth > 0")


def test_the_console_refuses_a_shopper(shop: dict[str, str], page: Page) -> None:
    register(page)
    answer = page.goto(f"{GATEWAY}/admin")
    assert answer is not None
    assert answer.status == 403
    expect(page.get_by_role("heading", name="Administrators only.")).to_be_visible()


def serious_violations(axe: Axe, page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now."""
    return [
        f"{v['id']}: {v['help']}"
        for v in axe.run(page).response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_pages_have_no_serious_accessibility_violations(shop: dict[str, str], page: Page) -> None:
    axe = Axe()
    for path in ("/signin", "/register"):
        page.goto(f"{GATEWAY}{path}")
        assert not serious_violations(axe, page), path
    register(page)
    product = shop["Zephyr Travel Speaker"]
    page.goto(f"{GATEWAY}/products/{product}")
    add_to_cart(page, 1)
    shop_pages = ["/", "/search?q=zephyr", f"/products/{product}", "/cart", "/checkout"]
    for path in [*shop_pages, "/orders", "/notifications", "/admin", "/no/such/page"]:
        page.goto(f"{GATEWAY}{path}")
        assert not serious_violations(axe, page), path
