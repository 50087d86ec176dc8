"""The console in a real browser: an administrator creates a product with an image, sets
its stock and finds it in the shop; edits and deletes a product; reads the three reports as
charts for a date range. A shopper is refused."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.flows import (
    admin_headers,
    api_shopper_buys,
    png,
    register,
    reload_until,
    search_until_found,
    sign_in,
    stocked_product,
    wait_until_image_loaded,
)
from tests.e2e.platform import GATEWAY

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def test_an_admin_adds_a_product_that_the_shop_then_finds(
    shop: dict[str, str], page: Page, tmp_path: Path
) -> None:
    image = tmp_path / "lamp.png"
    image.write_bytes(png())
    sku = f"LAMP-{uuid.uuid4().hex[:8]}"
    sign_in(page)
    page.get_by_role("link", name="Console").click()
    new = page.get_by_role("region", name="New product")
    new.get_by_label("SKU").fill(sku)
    new.get_by_label("Name").fill("Quasar Reading Lamp")
    new.get_by_label("Description").fill("A lamp for the night owl.")
    new.get_by_label("Category").fill("home")
    new.get_by_label("Price in cents").fill("3900")
    new.get_by_label("Image (JPEG, PNG or WebP)").set_input_files(str(image))
    preview = new.get_by_role("img", name="Preview of the chosen image")
    expect(preview).to_be_visible()
    wait_until_image_loaded(page, preview, width=640)
    new.get_by_role("button", name="Create product").click()
    expect(page.get_by_test_id("admin-message")).to_have_text("Created Quasar Reading Lamp.")

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Stock").click()
    stock = page.get_by_role("region", name="Set stock")
    stock.get_by_label("SKU").fill(sku)
    stock.get_by_label("On hand").fill("7")
    stock.get_by_label("Low-stock threshold").fill("2")
    stock.get_by_role("button", name="Set stock").click()
    expect(page.get_by_test_id("admin-message")).to_have_text(f"Stock of {sku}: 7 available.")
    row = page.get_by_test_id("stock-table").locator(f"tr[data-sku='{sku}']")
    cells = [sku, "Quasar Reading Lamp", "7", "0", "7", "2", "ok", "Change"]
    expect(row.locator("td")).to_have_text(cells)
    row.get_by_role("link", name=f"Change stock of {sku}").click()
    expect(stock.get_by_label("SKU")).to_have_value(sku)
    expect(stock.get_by_label("On hand")).to_have_value("7")
    expect(stock.get_by_label("Low-stock threshold")).to_have_value("2")

    search_until_found(page, "quasar lamp", "Quasar Reading Lamp")
    page.get_by_role("link", name="Quasar Reading Lamp").click()
    expect(page.get_by_text("In stock")).to_be_visible()
    picture = page.get_by_role("img", name="Quasar Reading Lamp")
    expect(picture).to_have_attribute("srcset", re.compile(r"\?w=240 240w, .*\?w=960 960w"))
    wait_until_image_loaded(page, picture)


def test_an_admin_edits_then_deletes_a_product(
    shop: dict[str, str], page: Page, api: httpx.Client
) -> None:
    word = f"comet{uuid.uuid4().hex[:5]}"
    product = stocked_product(api, admin_headers(api), f"{word} kettle", 4200, category="kitchen")
    sign_in(page)
    page.goto(f"{GATEWAY}/admin")
    page.get_by_role("link", name=f"Edit {word} kettle").click()
    details = page.get_by_role("region", name="Details")
    expect(details.get_by_label("SKU")).to_have_value(product["sku"])
    details.get_by_label("Name").fill(f"{word} steel kettle")
    details.get_by_label("Price in cents").fill("3950")
    details.get_by_role("button", name="Save product").click()
    expect(page.get_by_test_id("admin-message")).to_have_text(f"Saved {word} steel kettle.")

    page.goto(f"{GATEWAY}/products/{product['id']}")
    expect(page.get_by_role("heading", name=f"{word} steel kettle")).to_be_visible()
    expect(page.get_by_test_id("price")).to_have_text("39.50 USD")
    search_until_found(page, f"{word} steel", f"{word} steel kettle")

    page.goto(f"{GATEWAY}/admin/products/{product['id']}")
    page.get_by_label(f"Yes, delete {word} steel kettle").check()
    page.get_by_role("button", name="Delete product").click()
    expect(page.get_by_test_id("admin-message")).to_have_text(f"Deleted {word} steel kettle.")
    gone = page.goto(f"{GATEWAY}/products/{product['id']}")
    assert gone is not None
    assert gone.status == 404

    page.goto(f"{GATEWAY}/search?q={word}")
    listed = page.get_by_role("link", name=f"{word} steel kettle")
    reload_until(page, lambda: listed.count() == 0, "the deleted product stayed in search")


def test_the_analytics_charts_follow_the_date_range(
    shop: dict[str, str], page: Page, api: httpx.Client
) -> None:
    admin = admin_headers(api)
    product = stocked_product(api, admin, "Pulsar Alarm Clock", 1500, category="clocks")
    sku = product["sku"]
    threshold = api.put(
        f"/api/v1/inventory/{sku}", json={"on_hand": 4, "low_stock_threshold": 2}, headers=admin
    )
    assert threshold.status_code == 200, threshold.text
    api_shopper_buys(api, {product["id"]: 3})  # 1 left: at or below 2 is low

    today = datetime.now(UTC).date()
    sign_in(page)
    page.goto(f"{GATEWAY}/admin")
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Analytics").click()
    form = page.get_by_role("form", name="Report range")
    form.get_by_label("From").fill((today - timedelta(days=6)).isoformat())
    form.get_by_label("To").fill(today.isoformat())
    form.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(rf"from={today - timedelta(days=6)}&to={today}"))

    sales = page.get_by_role("img", name="Revenue by day")
    expect(sales.locator("rect.bar")).to_have_count(7)  # one bar per day of the range
    top = page.get_by_role("img", name="Units sold per product")
    low = page.get_by_role("img", name="Available units per low SKU")

    def reported() -> bool:
        return (
            top.get_by_text("Pulsar Alarm Clock").count() > 0 and low.get_by_text(sku).count() > 0
        )

    reload_until(page, reported, "the order and the low stock never reached the reports")
    expect(page.get_by_test_id("sales-summary")).to_contain_text("paid")
    tallest = sales.locator("rect.bar").last  # today's bar: the order just paid
    assert float(tallest.get_attribute("height") or 0) > 0
    expect(top).to_contain_text("3 · 45.00 USD")
    expect(low).to_contain_text("1 / 2")

    past = today - timedelta(days=400)
    page.goto(f"{GATEWAY}/admin/analytics?from={past}&to={past + timedelta(days=1)}")
    expect(page.get_by_role("img", name="Revenue by day").locator("rect.bar")).to_have_count(2)
    expect(page.get_by_text("No sales in this range.")).to_be_visible()

    page.goto(f"{GATEWAY}/admin/analytics?from={today}&to={past}")
    expect(page.get_by_role("alert")).to_contain_text("the first not after the second")


def test_the_console_refuses_a_shopper(shop: dict[str, str], page: Page) -> None:
    register(page)
    for path in (
        "/admin",
        "/admin/stock",
        "/admin/analytics",
        f"/admin/products/{shop['Zephyr Travel Speaker']}",
    ):
        answer = page.goto(f"{GATEWAY}{path}")
        assert answer is not None
        assert answer.status == 403, path
        expect(page.get_by_role("heading", name="Administrators only.")).to_be_visible()
