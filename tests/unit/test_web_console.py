"""The console's reports and the listings' paging against a fake public API: chart geometry,
SVG without inline styles or scripts, the date range sent to the API, the paging links."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.datastructures import QueryParams
from starlette.requests import Request

from emporium.services.api_gateway.web import charts, cookies
from emporium.services.api_gateway.web.admin_analytics import latest_alerts
from emporium.services.api_gateway.web.app import create_web
from emporium.services.api_gateway.web.paging import Pager

SALES = {
    "orders": 3,
    "paid_orders": 2,
    "revenue_minor": 4500,
    "currency": "USD",
    "series": [
        {"bucket": "2026-03-01T00:00:00Z", "orders": 1, "revenue_minor": 1000},
        {"bucket": "2026-03-02T00:00:00Z", "orders": 0, "revenue_minor": 0},
        {"bucket": "2026-03-03T00:00:00Z", "orders": 2, "revenue_minor": 3500},
    ],
}


class FakeReports:
    def __init__(self) -> None:
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        path = request.url.path
        if path == "/api/v1/users/me":
            return httpx.Response(200, json={"id": "u", "roles": ["admin"]})
        if path == "/api/v1/analytics/sales":
            return httpx.Response(200, json=SALES)
        if path == "/api/v1/analytics/top-products":
            item = {"product_id": "p1", "units": 4, "revenue_minor": 3600}
            return httpx.Response(200, json={"items": [item]})
        if path == "/api/v1/analytics/low-stock":
            alert = {"sku": "<SKU-9>", "available": 1, "threshold": 3, "at": None}
            return httpx.Response(200, json={"items": [alert]})
        if path == "/api/v1/products/p1":
            return httpx.Response(200, json={"id": "p1", "name": "Desk <Lamp>"})
        return httpx.Response(404, json={"status": 404})


@pytest.fixture
def fake() -> FakeReports:
    return FakeReports()


@pytest.fixture
async def admin(fake: FakeReports) -> AsyncIterator[httpx.AsyncClient]:
    web = create_web("http://api.test", httpx.MockTransport(fake))
    transport = httpx.ASGITransport(app=web)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        client.cookies.set(cookies.ACCESS, "boss")
        client.cookies.set(cookies.REFRESH, "r1")
        yield client
    await web.state.close()


def test_round_maxima() -> None:
    assert [charts.nice_ceiling(v) for v in (0, 1, 7, 12, 45, 100, 101)] == [
        1,
        1,
        10,
        20,
        50,
        100,
        200,
    ]


def test_columns_scale_to_the_round_maximum() -> None:
    chart = charts.columns([("a", 50), ("b", 0), ("c", 100)], height=200)
    assert [b.height for b in chart.bars] == [100, 0, 200]
    assert [b.y - charts.TOP for b in chart.bars] == [100, 200, 0]
    assert chart.bars[0].x < chart.bars[1].x < chart.bars[2].x
    assert chart.ticks[-1] == (charts.TOP, "100")


def test_rows_mark_their_thresholds() -> None:
    chart = charts.rows([("x", 1, "1 / 4"), ("y", 5, "5 / 2")], marks=[4, 2])
    first, second = chart.bars
    assert first.mark is not None
    assert second.mark is not None
    assert first.width < second.width
    assert first.mark > second.mark > first.x


async def test_the_reports_are_inline_svg_for_the_chosen_days(
    admin: httpx.AsyncClient, fake: FakeReports
) -> None:
    page = await admin.get("/admin/analytics?from=2026-03-01&to=2026-03-03&granularity=day")
    assert page.status_code == 200
    sales = next(r for r in fake.seen if r.url.path == "/api/v1/analytics/sales")
    assert dict(sales.url.params) == {
        "from": "2026-03-01T00:00:00Z",
        "to": "2026-03-04T00:00:00Z",
        "granularity": "day",
    }
    assert len(re.findall(r'<rect class="bar"', page.text)) == 3 + 1 + 1
    assert "Desk &lt;Lamp&gt;" in page.text
    assert "&lt;SKU-9&gt;" in page.text
    assert "<SKU-9>" not in page.text
    assert " style=" not in page.text
    assert "<script>" not in page.text
    assert "unsafe-inline" not in page.headers["content-security-policy"]


async def test_a_backwards_range_is_refused_before_asking_the_api(
    admin: httpx.AsyncClient, fake: FakeReports
) -> None:
    page = await admin.get("/admin/analytics?from=2026-03-05&to=2026-03-01")
    assert page.status_code == 400
    assert "the first not after the second" in page.text
    assert not [r for r in fake.seen if r.url.path.startswith("/api/v1/analytics")]


def test_low_stock_keeps_each_skus_latest_alert_emptiest_first() -> None:
    alerts = [
        {"sku": "A", "available": 2, "threshold": 3, "at": "2026-03-01T00:00:00Z"},
        {"sku": "B", "available": 1, "threshold": 3, "at": "2026-03-01T00:00:00Z"},
        {"sku": "A", "available": 0, "threshold": 3, "at": "2026-03-02T00:00:00Z"},
    ]
    latest = latest_alerts(alerts)
    assert [(a["sku"], a["available"]) for a in latest] == [("A", 0), ("B", 1)]


def pager(query: str) -> Pager:
    scope = {"type": "http", "query_string": query.encode(), "headers": []}
    request = Request(scope)
    assert request.query_params == QueryParams(query)
    return Pager.of(request)


def query_of(url: str | int | None) -> dict[str, list[str]]:
    assert isinstance(url, str)
    return parse_qs(urlsplit(url).query)


def test_paging_links_carry_the_trail_and_the_filters() -> None:
    first = pager("").links("/search", {"q": "lamp", "sort": ""}, "c1")
    assert first["number"] == 1
    assert first["prev"] is None
    assert query_of(first["next"]) == {"q": ["lamp"], "cursor": ["c1"]}

    second = pager("q=lamp&cursor=c1").links("/search", {"q": "lamp"}, "c2")
    assert second["number"] == 2
    assert second["prev"] == "/search?q=lamp"
    assert query_of(second["next"]) == {"q": ["lamp"], "cursor": ["c2"], "prev": ["c1"]}

    third = pager("cursor=c2&prev=c1").links("/category/x", {}, None)
    assert third["number"] == 3
    assert third["next"] is None
    assert query_of(third["prev"]) == {"cursor": ["c1"]}


async def test_the_old_category_links_lead_to_the_category_pages(
    admin: httpx.AsyncClient,
) -> None:
    moved = await admin.get("/?category=home%20%26%20garden")
    assert moved.status_code == 303
    assert moved.headers["location"] == "/category/home%20%26%20garden"
