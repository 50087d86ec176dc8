"""The storefront's pages app against a fake public API: what reaches the API, the cookies,
the CSRF check, the headers and the error pages (the real flow is tests/browser)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from emporium.services.api_gateway.web import cookies
from emporium.services.api_gateway.web.app import create_web, is_api_path
from emporium.services.api_gateway.web.render import srcset

PRODUCT = {
    "id": "p1",
    "sku": "SKU-1",
    "name": "<b>Bold</b> Lamp",
    "description": "d",
    "category": "home",
    "price_minor": 1999,
    "currency": "USD",
    "attributes": {},
    "image_urls": ["http://127.0.0.1:9061/images/abc.png"],
}


class FakeApi:
    """Answers the few API calls the pages make and records every request."""

    def __init__(self) -> None:
        self.seen: list[httpx.Request] = []
        self.order_status = 201

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        path = request.url.path
        if path == "/api/v1/products/p1":
            return httpx.Response(200, json=PRODUCT)
        if path == "/api/v1/inventory/SKU-1":
            return httpx.Response(200, json={"sku": "SKU-1", "available": 3})
        if path == "/api/v1/orders" and request.method == "POST":
            return httpx.Response(self.order_status, json={"id": "o1", "status": "PENDING"})
        if path == "/api/v1/users/me" and request.headers.get("authorization") == "Bearer old":
            return httpx.Response(401, json={"status": 401})
        if path == "/api/v1/users/me":
            roles = ["admin"] if request.headers.get("authorization") == "Bearer boss" else []
            return httpx.Response(200, json={"id": "u", "roles": roles})
        if path == "/api/v1/products" and request.method == "GET":
            return httpx.Response(200, json={"items": [PRODUCT], "next_cursor": None})
        if path == "/api/v1/auth/refresh":
            return httpx.Response(200, json={"access_token": "new", "refresh_token": "r2"})
        if path == "/api/v1/orders":
            if request.headers.get("authorization") == "Bearer old":
                return httpx.Response(401, json={"status": 401})
            return httpx.Response(200, json={"items": [], "next_cursor": None})
        return httpx.Response(404, json={"status": 404})


@pytest.fixture
def fake() -> FakeApi:
    return FakeApi()


@pytest.fixture
async def visitor(fake: FakeApi) -> AsyncIterator[httpx.AsyncClient]:
    web = create_web("http://api.test", httpx.MockTransport(fake))
    transport = httpx.ASGITransport(app=web)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        yield client
    await web.state.close()


async def csrf_of(visitor: httpx.AsyncClient) -> str:
    """The token a page's forms carry is the one its cookie holds."""
    page = await visitor.get("/register")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    assert found.group(1) == visitor.cookies[cookies.CSRF]
    return found.group(1)


async def test_a_product_page_escapes_and_allows_only_its_own_image_origin(
    visitor: httpx.AsyncClient,
) -> None:
    page = await visitor.get("/products/p1")
    assert page.status_code == 200
    assert "&lt;b&gt;Bold&lt;/b&gt; Lamp" in page.text
    assert "<b>Bold</b>" not in page.text
    assert "Only 3 left" in page.text
    policy = page.headers["content-security-policy"]
    assert "unsafe-inline" not in policy
    assert "img-src 'self' http://127.0.0.1:9061;" in policy
    assert "19.99 USD" in page.text


async def test_a_post_without_the_csrf_token_is_refused(
    visitor: httpx.AsyncClient, fake: FakeApi
) -> None:
    await visitor.get("/cart")
    refused = await visitor.post("/cart/add", data={"product_id": "p1", "csrf": "wrong" * 10})
    assert refused.status_code == 403
    assert cookies.CART not in visitor.cookies


async def test_a_cross_origin_post_is_refused_even_with_the_token(
    visitor: httpx.AsyncClient,
) -> None:
    token = await csrf_of(visitor)
    refused = await visitor.post(
        "/cart/add",
        data={"product_id": "p1", "csrf": token},
        headers={"Origin": "http://evil.test"},
    )
    assert refused.status_code == 403


async def test_the_cart_is_a_cookie_and_checkout_sends_the_forms_idempotency_key(
    visitor: httpx.AsyncClient, fake: FakeApi
) -> None:
    token = await csrf_of(visitor)
    added = await visitor.post(
        "/cart/add", data={"product_id": "p1", "quantity": "2", "csrf": token}
    )
    assert added.status_code == 303
    assert visitor.cookies[cookies.CART] == "p1:2"
    visitor.cookies.set(cookies.ACCESS, "good")
    visitor.cookies.set(cookies.REFRESH, "r1")
    form = {
        "csrf": token,
        "idempotency_key": "key-from-the-form",
        "payment_token": "tok_visa",
        "line1": "1 Main St",
        "city": "Springfield",
        "postal_code": "12345",
        "country": "US",
    }
    for _ in range(2):  # a double submit sends the same key twice: the API replays
        placed = await visitor.post("/checkout", data=form)
        assert placed.status_code == 303
        assert placed.headers["location"] == "/orders/o1"
        visitor.cookies.set(cookies.CART, "p1:2")
    orders = [r for r in fake.seen if r.url.path == "/api/v1/orders" and r.method == "POST"]
    assert [r.headers["idempotency-key"] for r in orders] == ["key-from-the-form"] * 2
    assert json.loads(orders[0].content)["items"] == [{"product_id": "p1", "quantity": 2}]
    assert orders[0].headers["authorization"] == "Bearer good"


async def test_an_expired_token_is_refreshed_and_the_new_pair_stored(
    visitor: httpx.AsyncClient, fake: FakeApi
) -> None:
    visitor.cookies.set(cookies.ACCESS, "old")
    visitor.cookies.set(cookies.REFRESH, "r1")
    page = await visitor.get("/orders")
    assert page.status_code == 200
    set_cookie = page.headers.get_list("set-cookie")
    access = next(c for c in set_cookie if c.startswith(f"{cookies.ACCESS}=new"))
    assert "HttpOnly" in access
    assert "SameSite=lax" in access
    assert "Secure" not in access  # plain HTTP here; TLS adds it


async def test_an_unknown_page_is_an_html_404(visitor: httpx.AsyncClient) -> None:
    page = await visitor.get("/no/such/page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "Page not found." in page.text


async def test_assets_are_long_cached_only_by_their_current_hash(
    visitor: httpx.AsyncClient,
) -> None:
    home = await visitor.get("/cart")
    url = re.search(r'href="(/static/shop\.css\?v=[0-9a-f]+)"', home.text)
    assert url is not None
    fresh = await visitor.get(url.group(1))
    assert fresh.headers["cache-control"] == "public, max-age=31536000, immutable"
    stale = await visitor.get("/static/shop.css?v=old")
    assert stale.headers["cache-control"] == "no-cache"


def test_malformed_cart_cookies_are_dropped() -> None:
    from starlette.requests import Request

    header = f"{cookies.CART}=p1:2|bad id:3|p2:x|p3:999".encode()
    request = Request({"type": "http", "headers": [(b"cookie", header)]})
    assert cookies.cart_of(request) == {"p1": 2, "p3": 100}


def test_api_paths_stay_with_the_rest_app() -> None:
    assert is_api_path("/api/v1/products")
    assert is_api_path("/openapi.json")
    assert not is_api_path("/apiary")
    assert not is_api_path("/")
    assert (
        srcset("http://x/i.png")
        == "http://x/i.png?w=240 240w, http://x/i.png?w=480 480w, http://x/i.png?w=960 960w"
    )


async def test_concurrent_calls_refresh_the_pair_only_once(fake: FakeApi) -> None:
    from emporium.services.api_gateway.web.client import ApiSession, Tokens

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(fake), base_url="http://api.test"
    ) as http:
        api = ApiSession(http, Tokens("old", "r1"))
        answers = await asyncio.gather(*(api.call("GET", "/api/v1/orders") for _ in range(3)))
    assert [a.status_code for a in answers] == [200, 200, 200]
    refreshes = [r for r in fake.seen if r.url.path == "/api/v1/auth/refresh"]
    assert len(refreshes) == 1
    assert api.tokens == Tokens("new", "r2")


@pytest.mark.parametrize(("token", "status"), [("good", 403), ("boss", 200)])
async def test_the_console_is_for_admins_only(
    visitor: httpx.AsyncClient, token: str, status: int
) -> None:
    visitor.cookies.set(cookies.ACCESS, token)
    visitor.cookies.set(cookies.REFRESH, "r1")
    page = await visitor.get("/admin")
    assert page.status_code == status
    assert ("Create product" in page.text) == (status == 200)


async def test_the_console_sends_a_visitor_without_a_session_to_sign_in(
    visitor: httpx.AsyncClient,
) -> None:
    page = await visitor.get("/admin")
    assert page.status_code == 303
    assert page.headers["location"] == "/signin?next=/admin"
