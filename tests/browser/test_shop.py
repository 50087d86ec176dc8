"""A shopper in a real browser, on the platform started as `make up` starts it: registers,
finds a product despite a typo, fills the cart, pays with `tok_visa` and watches the order
become PAID with its receipt among the notifications; a declined card says so clearly and
releases the cart's stock; home, category and search pages, recommendations and paging."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.browser.flows import (
    add_to_cart,
    admin_headers,
    api_shopper_buys,
    check_out,
    register,
    reload_until,
    search_until_found,
    serious_violations,
    sign_in,
    stocked_product,
)
from tests.e2e.platform import GATEWAY

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


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
    page.get_by_role("link", name="Notifications").click()
    receipts = page.locator("[data-kind=payment_receipt]")
    reload_until(page, lambda: receipts.count() > 0, "no payment receipt among the notifications")


def test_a_declined_card_says_so_and_releases_the_stock(
    shop: dict[str, str], page: Page, api: httpx.Client
) -> None:
    product = stocked_product(api, admin_headers(api), "Nimbus Desk Fan", 2500, on_hand=3)
    register(page)
    page.goto(f"{GATEWAY}/products/{product['id']}")
    add_to_cart(page, 2)
    check_out(page, "Card that is declined")
    expect(page.get_by_test_id("order-status")).to_have_text("CANCELLED", timeout=30_000)
    expect(page.get_by_role("alert")).to_have_text(re.compile("declined", re.IGNORECASE))
    expect(page.get_by_test_id("cart-count")).to_have_text("0")
    page.get_by_role("button", name="Put these items back in the cart").click()
    expect(page.get_by_test_id("cart-count")).to_have_text("2")
    page.goto(f"{GATEWAY}/products/{product['id']}")
    released = page.get_by_text("Only 3 left")  # the 2 reserved for the order came back
    reload_until(page, lambda: released.count() > 0, "the declined order kept its stock")


def test_home_and_product_pages_recommend(
    shop: dict[str, str], page: Page, api: httpx.Client
) -> None:
    admin = admin_headers(api)
    lamp = stocked_product(api, admin, "Orbit Bedside Lamp", 3100, category="lighting")
    bulb = stocked_product(api, admin, "Orbit Warm Bulb", 700, category="bulbs")
    api_shopper_buys(api, {lamp["id"]: 3, bulb["id"]: 3})

    page.goto(f"{GATEWAY}/")
    expect(page.get_by_role("complementary", name="Categories")).to_contain_text("lighting")
    sellers = page.get_by_role("region", name="Best sellers")
    reload_until(
        page,
        lambda: sellers.get_by_role("link", name="Orbit Bedside Lamp").count() > 0,
        "the lamp never became a best seller",
    )
    expect(page.get_by_role("region", name="Recommended for you")).to_have_count(0)

    page.goto(f"{GATEWAY}/products/{lamp['id']}")
    together = page.get_by_role("region", name="Bought together")
    expect(together.get_by_role("link", name="Orbit Warm Bulb")).to_be_visible()
    expect(together.get_by_role("link", name="Orbit Bedside Lamp")).to_have_count(0)
    expect(page.get_by_text("In stock")).to_be_visible()

    register(page)
    page.goto(f"{GATEWAY}/")
    for_you = page.get_by_role("region", name="Recommended for you")
    expect(for_you.get_by_role("link", name="Orbit Bedside Lamp")).to_be_visible()


def test_a_category_is_paged_forward_and_back(
    shop: dict[str, str], page: Page, api: httpx.Client
) -> None:
    admin = admin_headers(api)
    category = f"paged-{uuid.uuid4().hex[:6]}"
    for n in range(14):
        stocked_product(api, admin, f"Paged Widget {n:02d}", 1000 + n, category=category)
    page.goto(f"{GATEWAY}/category/{category}")
    expect(page.get_by_role("heading", name=category)).to_be_visible()
    cards = page.locator("main .grid .card")
    expect(cards).to_have_count(12)
    expect(page.get_by_test_id("page-number")).to_have_text("Page 1")
    first_page = set(cards.locator(".name").all_inner_texts())

    page.get_by_role("link", name="Next page").click()
    expect(page.get_by_test_id("page-number")).to_have_text("Page 2")
    expect(cards).to_have_count(2)
    assert not first_page & set(cards.locator(".name").all_inner_texts())
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)

    page.get_by_role("link", name="Previous page").click()
    expect(page.get_by_test_id("page-number")).to_have_text("Page 1")
    assert set(cards.locator(".name").all_inner_texts()) == first_page


def test_search_keeps_its_facet_filters_and_sort_across_pages(
    shop: dict[str, str], page: Page, api: httpx.Client
) -> None:
    admin = admin_headers(api)
    word = f"gizmo{uuid.uuid4().hex[:5]}"
    for n in range(15):
        stocked_product(api, admin, f"{word} model {n:02d}", 2000 + 100 * n, category="gadgets")
    stocked_product(api, admin, f"{word} pouch", 2100, category="bags")
    page.goto(f"{GATEWAY}/search?q={word}")
    reload_until(
        page,
        lambda: "16 results" in page.get_by_test_id("result-count").inner_text(),
        "the search view never held all 16",
    )
    facets = page.get_by_role("navigation", name="Categories of the results")
    expect(facets).to_contain_text("bags (1)")
    facets.get_by_role("link", name="gadgets (15)").click()
    page.get_by_label("Min price (cents)").fill("2100")
    page.get_by_label("Sort").select_option("price_desc")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_test_id("result-count")).to_have_text("14 results")
    prices = page.locator("main .grid .price")
    expect(prices).to_have_count(12)
    expect(prices.first).to_have_text("34.00 USD")

    page.get_by_role("link", name="Next page").click()
    expect(page.get_by_test_id("page-number")).to_have_text("Page 2")
    expect(prices).to_have_text(["22.00 USD", "21.00 USD"])
    expect(page.get_by_label("Sort")).to_have_value("price_desc")
    expect(page.get_by_label("Min price (cents)")).to_have_value("2100")
    expect(page.get_by_label("Category")).to_have_value("gadgets")


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


def test_a_phone_wide_page_needs_no_sideways_scrolling(shop: dict[str, str], page: Page) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    product = shop["Zephyr Travel Speaker"]
    page.goto(f"{GATEWAY}/products/{product}")
    add_to_cart(page, 1)
    sign_in(page)
    shop_pages = ["/", "/category/audio", "/search?q=zephyr", f"/products/{product}", "/cart"]
    console = ["/admin", f"/admin/products/{product}", "/admin/stock", "/admin/analytics"]
    for path in [*shop_pages, "/checkout", *console]:
        page.goto(f"{GATEWAY}{path}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{path} is {width}px wide on a 360px phone"


def test_pages_have_no_serious_accessibility_violations(shop: dict[str, str], page: Page) -> None:
    axe = Axe()
    for path in ("/signin", "/register"):
        page.goto(f"{GATEWAY}{path}")
        assert not serious_violations(axe, page), path
    register(page)
    product = shop["Zephyr Travel Speaker"]
    page.goto(f"{GATEWAY}/products/{product}")
    add_to_cart(page, 1)
    shop_pages = ["/", "/category/audio", "/search?q=zephyr", f"/products/{product}", "/cart"]
    for path in [*shop_pages, "/checkout", "/orders", "/notifications", "/admin", "/no/such/page"]:
        page.goto(f"{GATEWAY}{path}")
        assert not serious_violations(axe, page), path
    page.goto(f"{GATEWAY}/cart")
    check_out(page, "Card that is declined")
    expect(page.get_by_test_id("order-status")).to_have_text("CANCELLED", timeout=30_000)
    assert not serious_violations(axe, page), "a declined order"
    page.get_by_role("button", name="Sign out").click()
    sign_in(page)
    console = ["/admin", f"/admin/products/{product}", "/admin/stock", "/admin/analytics"]
    for path in [*console, "/admin/analytics?from=2026-01-02&to=2026-01-01"]:
        page.goto(f"{GATEWAY}{path}")
        assert not serious_violations(axe, page), path
