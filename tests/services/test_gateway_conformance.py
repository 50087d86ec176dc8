"""Regression tests for what the schemathesis run (tests/e2e/test_schemathesis.py) found at
the gateway, one per class of bug, against the in-process gRPC doubles of the backends:
a 500 on report times, integers beyond int64, lax types, backend rules missing at the edge,
cursors, the idempotency header, `Allow` on 405 and a bare-text 404."""

from __future__ import annotations

import httpx
import pytest

from emporium.chassis.config import load_settings
from emporium.chassis.runtime import ServiceApp, http_app
from emporium.services.api_gateway.app import close_api, create_api
from tests.services.gateway_doubles import (
    ADMIN_TOKEN,
    SHOPPER_TOKEN,
    Doubles,
    bearer,
)

ADMIN = bearer(ADMIN_TOKEN)
SHOPPER = bearer(SHOPPER_TOKEN)
PROBLEM = "application/problem+json"
ADDRESS = {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}


def refused(response: httpx.Response, *fields: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert {e["field"] for e in response.json().get("errors", [])} == set(fields), response.text


# -- report times: the 500 ------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"to": "0073-07-18T00:39:32.456Z"},  # the run's 500: `from` defaulted below year 1
        {"from": "0001-01-01T00:00:00+14:15"},  # year 0 once in UTC
        {"to": "9999-12-31T23:00:00-14:15"},  # year 10000 once in UTC
        {"from": "0000-02-29T00:00:00Z", "to": "0001-01-01T00:00:00Z"},  # RFC 3339 has year 0
    ],
)
async def test_far_past_or_far_future_times_are_a_report_not_a_500(
    client: httpx.AsyncClient, doubles: Doubles, params: dict[str, str]
) -> None:
    response = await client.get("/api/v1/analytics/top-products", headers=ADMIN, params=params)
    assert response.status_code == 200, response.text
    request, _ = doubles.rec.last("GetTopProducts")
    # Both bounds are Timestamps protobuf can carry, in order.
    request.from_time.ToJsonString()
    request.to_time.ToJsonString()
    assert request.from_time.seconds <= request.to_time.seconds


@pytest.mark.parametrize(
    "text",
    [
        "0.5",  # pydantic took this for a unix time
        "1700000000",
        "2024-01-01",
        "2024-01-01T00:00:00",
        "2024-01-01 00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2024-01-01T12:00:60Z",
        "2024-01-01T00:00:00+24:00",
    ],
)
async def test_report_times_are_rfc_3339_date_times_only(
    client: httpx.AsyncClient, text: str
) -> None:
    response = await client.get("/api/v1/analytics/sales", headers=ADMIN, params={"to": text})
    refused(response, "to")


@pytest.mark.parametrize(
    "text", ["2024-05-01t00:00:00z", "2016-12-31T23:59:60Z", "2024-05-01T05:30:00.123456789+05:30"]
)
async def test_every_rfc_3339_spelling_is_accepted(client: httpx.AsyncClient, text: str) -> None:
    response = await client.get("/api/v1/analytics/sales", headers=ADMIN, params={"to": text})
    assert response.status_code == 200, response.text


# -- numbers and types ----------------------------------------------------------------------


async def test_an_integer_beyond_int64_is_400_not_500(
    client: httpx.AsyncClient, doubles: Doubles
) -> None:
    response = await client.get(
        "/api/v1/search", params={"max_price": "34446815114504500885223850901504"}
    )
    refused(response, "max_price")
    assert doubles.rec.count("Search") == 0


@pytest.mark.parametrize(("value", "ok"), [(5, True), (5.0, True), ("5", False), (True, False)])
async def test_body_integers_are_json_schema_integers(
    client: httpx.AsyncClient, value: object, ok: bool
) -> None:
    response = await client.put("/api/v1/inventory/SKU-1", headers=ADMIN, json={"on_hand": value})
    if ok:
        assert response.status_code == 200, response.text
    else:
        refused(response, "on_hand")


# -- backend rules at the edge --------------------------------------------------------------


async def test_backend_rules_are_enforced_before_any_call(
    client: httpx.AsyncClient, doubles: Doubles
) -> None:
    """Each of these was accepted by the edge and refused by a backend (user-service names
    of 1-100 characters, product-service's SKU alphabet and price cap, search's 200)."""
    refused(
        await client.patch("/api/v1/users/me", headers=SHOPPER, json={"name": "x" * 101}), "name"
    )
    refused(
        await client.patch("/api/v1/users/me", headers=SHOPPER, json={"name": "a\u200bb"}), "name"
    )
    product = {"sku": "two words", "name": "n", "category": "c", "currency": "USD"}
    product["price_minor"] = 10**10 + 1
    refused(
        await client.post("/api/v1/products", headers=ADMIN, json=product), "sku", "price_minor"
    )
    refused(await client.get("/api/v1/search", params={"q": "x" * 201}), "q")
    refused(await client.get("/api/v1/inventory/bad%20sku"), "sku")
    assert [doubles.rec.count(m) for m in ("UpdateProfile", "CreateProduct", "Search")] == [0, 0, 0]
    assert doubles.rec.count("GetStock") == 0


async def test_a_cursor_outside_the_base64url_alphabet_is_refused_at_the_edge(
    client: httpx.AsyncClient, doubles: Doubles
) -> None:
    refused(await client.get("/api/v1/products", params={"cursor": "a b"}), "cursor")
    assert doubles.rec.count("ListProducts") == 0


async def test_the_idempotency_key_is_a_required_visible_ascii_header_sent_as_is(
    client: httpx.AsyncClient, doubles: Doubles
) -> None:
    body = {
        "items": [{"product_id": "p-1", "quantity": 1}],
        "payment_token": "tok_visa",
        "shipping_address": {**ADDRESS, "line2": "   "},
    }
    refused(await client.post("/api/v1/orders", headers=SHOPPER, json=body), "Idempotency-Key")
    spaced = {**SHOPPER, "Idempotency-Key": "two words"}
    refused(await client.post("/api/v1/orders", headers=spaced, json=body), "Idempotency-Key")
    keyed = {**SHOPPER, "Idempotency-Key": "k-1"}
    assert (await client.post("/api/v1/orders", headers=keyed, json=body)).status_code == 201
    request, _ = doubles.rec.last("PlaceOrder")
    assert request.idempotency_key == "k-1"
    assert request.shipping_address.line2 == ""  # blank is absent, as user-service reads it


# -- HTTP itself ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/api/v1/products", {"GET", "HEAD", "POST"}),
        ("/api/v1/products/p-1", {"DELETE", "GET", "HEAD", "PATCH"}),
        ("/api/v1/users/me/addresses", {"GET", "HEAD", "POST"}),
        ("/api/v1/inventory/SKU-1", {"GET", "HEAD", "PUT"}),
    ],
)
async def test_405_allows_every_method_of_the_path(
    client: httpx.AsyncClient, path: str, methods: set[str]
) -> None:
    """Starlette named only the methods of the first route of the path (`Allow: POST`)."""
    response = await client.request("OPTIONS", path)
    assert response.status_code == 405
    assert response.headers["content-type"].startswith(PROBLEM)
    assert {m.strip() for m in response.headers["allow"].split(",")} == methods


async def test_an_encoded_newline_in_the_path_is_a_problem_not_bare_text(
    doubles: Doubles,
) -> None:
    """Through the runtime's app: `Mount("/")` did not match `%0A` and answered text/plain."""
    api = create_api(doubles.targets())
    app = http_app(ServiceApp("api_gateway", load_settings("api_gateway", {}), http_app=api))
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            unknown = await http.get("/api/v1/nowhere%0A")
            product = await http.get("/api/v1/products/p%0A1")
            health = await http.get("/healthz")
    finally:
        await close_api(api)
    assert (unknown.status_code, unknown.headers["content-type"]) == (404, PROBLEM)
    assert product.status_code == 404
    assert product.headers["content-type"].startswith(PROBLEM)
    assert health.json()["service"] == "api_gateway"
