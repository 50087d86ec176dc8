"""The REST contract of API.md, route by route, against in-process gRPC test doubles of the
backends (tests/services/gateway_doubles.py): paths, status codes, field names, the
identity each backend call carries, and how backend errors come back as problem+json."""

from __future__ import annotations

import httpx
import pytest

from emporium.contracts.rpc.order.v1 import order_pb2
from tests.services.gateway_doubles import (
    ADMIN_ID,
    ADMIN_TOKEN,
    OTHER_TOKEN,
    PNG_MAGIC,
    SHOPPER_ID,
    SHOPPER_TOKEN,
    Doubles,
    bearer,
)

ADMIN = bearer(ADMIN_TOKEN)
SHOPPER = bearer(SHOPPER_TOKEN)
PROBLEM = "application/problem+json"
PRODUCT_FIELDS = {
    "id", "sku", "name", "description", "category", "price_minor", "currency", "attributes",
    "image_urls", "created_at", "updated_at",
}  # fmt: skip
ADDRESS = {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "de"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert {"type", "title", "status", "detail"} <= body.keys()
    return body


def fields_of(body: dict[str, object]) -> set[str]:
    errors = body["errors"]
    assert isinstance(errors, list)
    return {e["field"] for e in errors}


# -- identity ---------------------------------------------------------------------------


async def test_register_creates_credentials_then_profile(
    client: httpx.AsyncClient, doubles: Doubles
) -> None:
    body = {"email": "New@Example.com", "password": "long enough pw", "name": "Nia"}
    response = await client.post("/api/v1/auth/register", json=body)

    assert response.status_code == 201
    created = response.json()
    assert created.keys() == {"id", "email", "name"}
    assert created["email"] == "new@example.com"  # as auth-service canonicalised it
    create_user, caller = doubles.rec.last("CreateUser")
    assert (create_user.user_id, create_user.name) == (created["id"], "Nia")
    assert caller.is_system


async def test_register_taken_email_is_409(client: httpx.AsyncClient) -> None:
    body = {"email": "shopper@example.com", "password": "long enough pw", "name": "Sam"}
    problem = assert_problem(await client.post("/api/v1/auth/register", json=body), 409)
    assert problem["reason"] == "email_taken"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "password": "long enough pw", "name": "A"}, "email"),
        ({"email": "a@example.com", "password": "short", "name": "A"}, "password"),
        ({"email": "a@example.com", "password": "long enough pw"}, "name"),
    ],
    ids=["email", "weak-password", "missing-name"],
)
async def test_register_invalid_input_is_400_naming_the_field(
    client: httpx.AsyncClient, doubles: Doubles, body: dict[str, str], field: str
) -> None:
    problem = assert_problem(await client.post("/api/v1/auth/register", json=body), 400)
    assert fields_of(problem) == {field}
    assert doubles.rec.count("Register") == 0  # refused at the edge, nothing written


async def test_login_refresh_and_reuse(client: httpx.AsyncClient, doubles: Doubles) -> None:
    creds = {"email": "shopper@example.com", "password": "correct horse battery"}
    login = await client.post("/api/v1/auth/login", json=creds)
    assert login.status_code == 200
    pair = login.json()
    assert pair.keys() == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert (pair["token_type"], pair["expires_in"]) == ("bearer", 900)
    assert doubles.rec.last("Login")[0].client_ip == "127.0.0.1"

    refresh = {"refresh_token": pair["refresh_token"]}
    rotated = await client.post("/api/v1/auth/refresh", json=refresh)
    assert rotated.status_code == 200
    assert rotated.json()["refresh_token"] != pair["refresh_token"]
    reused = assert_problem(await client.post("/api/v1/auth/refresh", json=refresh), 401)
    assert reused["reason"] == "refresh_token_reused"


async def test_bad_credentials_are_401(client: httpx.AsyncClient) -> None:
    creds = {"email": "shopper@example.com", "password": "wrong password!"}
    response = await client.post("/api/v1/auth/login", json=creds)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_logout_stops_the_token_at_once(client: httpx.AsyncClient) -> None:
    creds = {"email": "shopper@example.com", "password": "correct horse battery"}
    token = (await client.post("/api/v1/auth/login", json=creds)).json()["access_token"]
    assert (await client.get("/api/v1/users/me", headers=bearer(token))).status_code == 200

    response = await client.post("/api/v1/auth/logout", headers=bearer(token))

    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await client.get("/api/v1/users/me", headers=bearer(token)), 401)


async def test_logout_with_the_refresh_token_alone(
    client: httpx.AsyncClient, doubles: Doubles
) -> None:
    """No bearer token (it may have expired): the refresh token in the body is enough, and
    the tokens travel in the request, not as the caller (auth would refuse an expired one
    before Logout ran)."""
    creds = {"email": "shopper@example.com", "password": "correct horse battery"}
    pair = (await client.post("/api/v1/auth/login", json=creds)).json()

    response = await client.post(
        "/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}
    )

    assert response.status_code == 204
    request, caller = doubles.rec.last("Logout")
    assert (request.refresh_token, request.access_token) == (pair["refresh_token"], "")
    assert not caller.is_authenticated
    assert_problem(await client.get("/api/v1/users/me", headers=bearer(pair["access_token"])), 401)
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert_problem(refreshed, 401)


async def test_logout_sends_both_tokens_and_a_broken_header_does_not_block_the_refresh_token(
    client: httpx.AsyncClient, doubles: Doubles
) -> None:
    creds = {"email": "shopper@example.com", "password": "correct horse battery"}
    pair = (await client.post("/api/v1/auth/login", json=creds)).json()
    both = await client.post(
        "/api/v1/auth/logout",
        headers=bearer(pair["access_token"]),
        json={"refresh_token": pair["refresh_token"]},
    )
    assert both.status_code == 204
    request, _ = doubles.rec.last("Logout")
    assert (request.access_token, request.refresh_token) == (
        pair["access_token"],
        pair["refresh_token"],
    )
    second = (await client.post("/api/v1/auth/login", json=creds)).json()
    broken = await client.post(
        "/api/v1/auth/logout",
        headers={"Authorization": "Basic abc"},
        json={"refresh_token": second["refresh_token"]},
    )
    assert broken.status_code == 204
    assert doubles.rec.last("Logout")[0].access_token == ""


async def test_logout_without_any_token_is_401_and_asks_nobody(
    client: httpx.AsyncClient, doubles: Doubles
) -> None:
    for response in (
        await client.post("/api/v1/auth/logout"),
        await client.post("/api/v1/auth/logout", headers={"Authorization": "Basic abc"}),
        await client.post(
            "/api/v1/auth/logout", content=b"null", headers={"content-type": "application/json"}
        ),
    ):
        assert_problem(response, 401)
    assert doubles.rec.count("Logout") == 0
    forged = await client.post("/api/v1/auth/logout", json={"refresh_token": "rt-nope"})
    assert_problem(forged, 401)
    invalid = await client.post("/api/v1/auth/logout", json={"refresh_token": ""})
    assert_problem(invalid, 400)


async def test_me_forwards_the_caller_identity(client: httpx.AsyncClient, doubles: Doubles) -> None:
    response = await client.get("/api/v1/users/me", headers=SHOPPER)

    assert response.status_code == 200
    assert response.json() == {
        "id": SHOPPER_ID,
        "email": "shopper@example.com",
        "name": "Sam",
        "roles": ["user"],
    }
    request, caller = doubles.rec.last("GetProfile")
    assert request.user_id == SHOPPER_ID
    assert (caller.user_id, caller.roles, caller.token) == (
        SHOPPER_ID,
        frozenset({"user"}),
        SHOPPER_TOKEN,
    )


async def test_patch_me_changes_only_what_is_sent(
    client: httpx.AsyncClient, doubles: Doubles
) -> None:
    response = await client.patch("/api/v1/users/me", headers=SHOPPER, json={"name": "Samira"})
    assert response.status_code == 200
    assert response.json()["name"] == "Samira"

    unchanged = await client.patch("/api/v1/users/me", headers=SHOPPER, json={})
    assert unchanged.json()["name"] == "Samira"
    assert not doubles.rec.last("UpdateProfile")[0].HasField("name")


async def test_addresses_add_and_list(client: httpx.AsyncClient, doubles: Doubles) -> None:
    added = await client.post(
        "/api/v1/users/me/addresses",
        headers={**SHOPPER, "Idempotency-Key": "addr-1"},
        json=ADDRESS,
    )
    assert added.status_code == 201
    address = added.json()
    assert address["country"] == "DE"
    assert {"id", "line1", "line2", "city", "postal_code", "country"} <= address.keys()
    assert doubles.rec.last("AddAddress")[0].request_id == "addr-1"

    page = await client.get("/api/v1/users/me/addresses", headers=SHOPPER)
    assert page.status_code == 200
    assert page.json() == {"items": [address], "next_cursor": None}


# -- catalog ----------------------------------------------------------------------------


async def create_product(client: httpx.AsyncClient, sku: str = "HEAD-1") -> dict[str, object]:
    body = {
        "sku": sku,
        "name": "Headphones",
        "description": "Over-ear",
        "category": "audio",
        "price_minor": 1999,
        "currency": "USD",
        "attributes": {"color": "black", "wireless": True, "weight_g": 250, "rating": 4.5},
    }
    response = await client.post("/api/v1/products", headers=ADMIN, json=body)
    assert response.status_code == 201, response.text
    product: dict[str, object] = response.json()
    return product


async def test_product_crud(client: httpx.AsyncClient, doubles: Doubles) -> None:
    product = await create_product(client)
    assert product.keys() == PRODUCT_FIELDS
    assert product["attributes"] == {
        "color": "black",
        "wireless": True,
        "weight_g": 250,
        "rating": 4.5,
    }
    assert product["created_at"] == "2024-05-01T12:00:00Z"
    assert doubles.rec.last("CreateProduct")[1].user_id == ADMIN_ID

    fetched = await client.get(f"/api/v1/products/{product['id']}")
    assert (fetched.status_code, fetched.json()) == (200, product)

    patched = await client.patch(
        f"/api/v1/products/{product['id']}", headers=ADMIN, json={"price_minor": 2499}
    )
    assert patched.status_code == 200
    assert (patched.json()["price_minor"], patched.json()["name"]) == (2499, "Headphones")

    deleted = await client.delete(f"/api/v1/products/{product['id']}", headers=ADMIN)
    assert deleted.status_code == 204
    assert_problem(await client.get(f"/api/v1/products/{product['id']}"), 404)


async def test_duplicate_sku_is_409(client: httpx.AsyncClient) -> None:
    await create_product(client)
    body = {"sku": "HEAD-1", "name": "X", "category": "audio", "price_minor": 1, "currency": "USD"}
    problem = assert_problem(await client.post("/api/v1/products", headers=ADMIN, json=body), 409)
    assert problem["reason"] == "duplicate_sku"


async def test_patch_cannot_change_the_id(client: httpx.AsyncClient) -> None:
    product = await create_product(client)
    response = await client.patch(
        f"/api/v1/products/{product['id']}", headers=ADMIN, json={"id": "other"}
    )
    assert fields_of(assert_problem(response, 400)) == {"id"}


async def test_product_list_is_cursor_paginated(client: httpx.AsyncClient) -> None:
    for n in range(3):
        await create_product(client, sku=f"SKU-{n}")

    first = (await client.get("/api/v1/products", params={"limit": 2})).json()
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    rest = await client.get("/api/v1/products", params={"limit": 2, "cursor": first["next_cursor"]})
    assert [p["sku"] for p in rest.json()["items"]] == ["SKU-2"]
    assert rest.json()["next_cursor"] is None


@pytest.mark.parametrize("limit", ["0", "101", "ten"])
async def test_limit_out_of_range_is_400_naming_limit(
    client: httpx.AsyncClient, limit: str
) -> None:
    response = await client.get("/api/v1/products", params={"limit": limit})
    assert fields_of(assert_problem(response, 400)) == {"limit"}


async def test_image_upload_stores_in_cdn_then_attaches(
    client: httpx.AsyncClient, doubles: Doubles
) -> None:
    product = await create_product(client)
    image = PNG_MAGIC + b"\x00" * 2048
    response = await client.post(
        f"/api/v1/products/{product['id']}/images",
        headers=ADMIN,
        files={"file": ("photo.png", image, "image/png")},
    )

    assert response.status_code == 201
    url = response.json()["url"]
    upload, caller = doubles.rec.last("UploadImage")
    assert (upload.content, upload.product_id, caller.user_id) == (image, product["id"], ADMIN_ID)
    assert doubles.rec.last("AddProductImage")[0].url == url
    assert (await client.get(f"/api/v1/products/{product['id']}")).json()["image_urls"] == [url]


async def test_not_an_image_is_415_from_cdn(client: httpx.AsyncClient, doubles: Doubles) -> None:
    product = await create_product(client)
    response = await client.post(
        f"/api/v1/products/{product['id']}/images",
        headers=ADMIN,
        files={"file": ("photo.png", b"just text", "image/png")},  # declared type lies
    )
    assert assert_problem(response, 415)["reason"] == "not_an_image"
    assert doubles.rec.count("AddProductImage") == 0


async def test_image_over_10_mib_is_413(client: httpx.AsyncClient, doubles: Doubles) -> None:
    product = await create_product(client)
    too_big = PNG_MAGIC + b"\x00" * (10 * 1024 * 1024)
    response = await client.post(
        f"/api/v1/products/{product['id']}/images",
        headers=ADMIN,
        files={"file": ("big.png", too_big, "image/png")},
    )
    assert_problem(response, 413)
    assert doubles.rec.count("UploadImage") == 0


async def test_image_of_max_size_passes_the_message_limit(
    client: httpx.AsyncClient, doubles: Doubles
) -> None:
    """10 MiB exactly is allowed and must fit through gRPC (default limit is 4 MiB)."""
    product = await create_product(client)
    image = PNG_MAGIC + b"\x00" * (10 * 1024 * 1024 - len(PNG_MAGIC))
    response = await client.post(
        f"/api/v1/products/{product['id']}/images",
        headers=ADMIN,
        files={"file": ("max.png", image, "image/png")},
    )
    assert response.status_code == 201, response.text


async def test_search_shape(client: httpx.AsyncClient, doubles: Doubles) -> None:
    params = {"q": "headphnes", "category": "audio", "min_price": "100", "sort": "price_asc"}
    response = await client.get("/api/v1/search", params=params)

    assert response.status_code == 200
    body = response.json()
    assert body.keys() == {"items", "total", "facets", "next_cursor"}
    assert body["items"][0].keys() == PRODUCT_FIELDS
    assert body["items"][0]["attributes"] == {"wireless": True}
    assert (body["total"], body["facets"], body["next_cursor"]) == (
        3,
        {"category": {"audio": 3}},
        "c-2",
    )
    request, _ = doubles.rec.last("Search")
    assert (request.q, request.min_price, request.HasField("max_price")) == (
        "headphnes",
        100,
        False,
    )


async def test_search_rejects_an_unknown_sort(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/search", params={"sort": "cheapest"})
    assert fields_of(assert_problem(response, 400)) == {"sort"}


async def test_inventory_put_and_get(client: httpx.AsyncClient) -> None:
    put = await client.put(
        "/api/v1/inventory/HEAD-1", headers=ADMIN, json={"on_hand": 7, "low_stock_threshold": 2}
    )
    assert put.status_code == 200
    expected = {
        "sku": "HEAD-1",
        "on_hand": 7,
        "reserved": 0,
        "available": 7,
        "low_stock_threshold": 2,
    }
    assert put.json() == expected
    assert (await client.get("/api/v1/inventory/HEAD-1")).json() == expected
    assert_problem(await client.get("/api/v1/inventory/NOPE"), 404)
    negative = await client.put("/api/v1/inventory/HEAD-1", headers=ADMIN, json={"on_hand": -1})
    assert fields_of(assert_problem(negative, 400)) == {"on_hand"}


# -- orders -----------------------------------------------------------------------------


def order_body(token: str = "tok_visa", product_id: str = "p-1") -> dict[str, object]:
    return {
        "items": [{"product_id": product_id, "quantity": 2}],
        "payment_token": token,
        "shipping_address": ADDRESS,
    }


async def place(
    client: httpx.AsyncClient, key: str | None = "k-1", **kwargs: str
) -> httpx.Response:
    headers = {**SHOPPER, **({"Idempotency-Key": key} if key else {})}
    return await client.post("/api/v1/orders", headers=headers, json=order_body(**kwargs))


async def test_paid_order_is_201_with_the_contract_fields(
    client: httpx.AsyncClient, doubles: Doubles
) -> None:
    response = await place(client)

    assert response.status_code == 201
    order = response.json()
    assert order["status"] == "PAID"
    assert {"id", "user_id", "status", "items", "total_minor", "currency", "payment"} <= (
        order.keys()
    )
    assert order["items"] == [
        {
            "product_id": "p-1",
            "sku": "SKU-p-1",
            "name": "Headphones",
            "quantity": 2,
            "unit_price_minor": 1999,
        }
    ]
    assert (order["total_minor"], order["payment"]["status"]) == (3998, "SUCCEEDED")
    request, caller = doubles.rec.last("PlaceOrder")
    assert (request.idempotency_key, request.user_id, caller.user_id) == (
        "k-1",
        SHOPPER_ID,
        SHOPPER_ID,
    )
    assert request.shipping_address.country == "DE"


async def test_declined_order_is_201_cancelled(client: httpx.AsyncClient) -> None:
    response = await place(client, token="tok_chargeDeclined")
    assert response.status_code == 201
    assert response.json()["status"] == "CANCELLED"
    assert response.json()["payment"] == {"status": "DECLINED", "reason": "card_declined"}


async def test_unfinished_saga_is_202_pending(client: httpx.AsyncClient) -> None:
    response = await place(client, token="tok_slow")
    assert response.status_code == 202
    assert response.json()["status"] == "PENDING"


async def test_same_idempotency_key_replays(client: httpx.AsyncClient, doubles: Doubles) -> None:
    first = await place(client, key="same")
    second = await place(client, key="same")
    assert second.status_code == first.status_code == 201
    assert second.json()["id"] == first.json()["id"]
    assert len(doubles.order.orders) == 1


async def test_missing_idempotency_key_is_400_naming_the_header(
    client: httpx.AsyncClient, doubles: Doubles
) -> None:
    problem = assert_problem(await place(client, key=None), 400)
    assert fields_of(problem) == {"Idempotency-Key"}
    assert doubles.rec.count("PlaceOrder") == 0


async def test_out_of_stock_is_409(client: httpx.AsyncClient) -> None:
    problem = assert_problem(await place(client, product_id="p-out"), 409)
    assert problem["reason"] == "out_of_stock"
    assert str(problem["type"]).endswith("out_of_stock")
    assert fields_of(problem) == {"SKU-OUT"}


async def test_order_body_errors_name_nested_fields(client: httpx.AsyncClient) -> None:
    body = order_body()
    body["items"] = [{"product_id": "p-1", "quantity": 0}]
    response = await client.post(
        "/api/v1/orders", headers={**SHOPPER, "Idempotency-Key": "k"}, json=body
    )
    assert fields_of(assert_problem(response, 400)) == {"items.0.quantity"}


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/orders",
        headers={**SHOPPER, "Idempotency-Key": "k", "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert_problem(response, 400)


async def test_orders_get_list_and_cancel(client: httpx.AsyncClient) -> None:
    order = (await place(client)).json()

    fetched = await client.get(f"/api/v1/orders/{order['id']}", headers=SHOPPER)
    assert (fetched.status_code, fetched.json()) == (200, order)
    page = (await client.get("/api/v1/orders", headers=SHOPPER)).json()
    assert ([o["id"] for o in page["items"]], page["next_cursor"]) == ([order["id"]], None)
    assert_problem(
        await client.get(f"/api/v1/orders/{order['id']}", headers=bearer(OTHER_TOKEN)), 404
    )
    assert (await client.get(f"/api/v1/orders/{order['id']}", headers=ADMIN)).status_code == 200

    cancelled = await client.post(f"/api/v1/orders/{order['id']}/cancel", headers=SHOPPER)
    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["payment"]["status"]) == (
        "CANCELLED",
        "REFUNDED",
    )


def test_order_status_names_are_stripped_of_their_prefix() -> None:
    from emporium.services.api_gateway.convert import enum_name

    assert enum_name(order_pb2.OrderStatus, order_pb2.ORDER_STATUS_PAID, "ORDER_STATUS_") == "PAID"


# -- engagement -------------------------------------------------------------------------


async def test_notifications_of_the_caller(client: httpx.AsyncClient, doubles: Doubles) -> None:
    response = await client.get("/api/v1/notifications", headers=SHOPPER)
    assert response.status_code == 200
    (item,) = response.json()["items"]
    assert item == {
        "id": "n-1",
        "channel": "email",
        "kind": "welcome",
        "status": "sent",
        "subject": "Welcome to Emporium",
        "created_at": "2024-05-01T12:00:00Z",
    }
    assert response.json()["next_cursor"] is None
    assert doubles.rec.last("ListNotifications")[0].user_id == SHOPPER_ID


async def test_recommendations_anonymous_and_personalised(
    client: httpx.AsyncClient, doubles: Doubles
) -> None:
    anonymous = await client.get("/api/v1/recommendations", params={"product_id": "p-1"})
    assert anonymous.status_code == 200
    assert anonymous.json() == {"items": [{"product_id": "p-2", "score": 0.75}]}
    request, caller = doubles.rec.last("GetRecommendations")
    assert (request.product_id, request.user_id, caller.is_authenticated) == ("p-1", "", False)

    signed_in = await client.get("/api/v1/recommendations", headers=SHOPPER)
    assert signed_in.status_code == 200
    assert doubles.rec.last("GetRecommendations")[0].user_id == SHOPPER_ID


async def test_analytics_reports(client: httpx.AsyncClient, doubles: Doubles) -> None:
    sales = await client.get(
        "/api/v1/analytics/sales",
        headers=ADMIN,
        params={
            "from": "2024-05-01T00:00:00Z",
            "to": "2024-05-02T00:00:00Z",
            "granularity": "hour",
        },
    )
    assert sales.status_code == 200
    assert sales.json() == {
        "orders": 3,
        "paid_orders": 2,
        "revenue_minor": 3998,
        "currency": "USD",
        "series": [{"bucket": "2024-05-01T12:00:00Z", "orders": 2, "revenue_minor": 3998}],
    }
    request, _ = doubles.rec.last("GetSalesReport")
    assert request.to_time.seconds - request.from_time.seconds == 86_400

    top = await client.get("/api/v1/analytics/top-products", headers=ADMIN)
    assert top.json() == {"items": [{"product_id": "p-1", "units": 2, "revenue_minor": 3998}]}
    request, _ = doubles.rec.last("GetTopProducts")
    assert request.to_time.seconds - request.from_time.seconds == 30 * 86_400

    low = await client.get("/api/v1/analytics/low-stock", headers=ADMIN)
    assert low.json() == {
        "items": [{"sku": "HEAD-1", "available": 2, "threshold": 5, "at": "2024-05-01T12:00:00Z"}]
    }


async def test_analytics_range_must_be_ordered(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/analytics/sales",
        headers=ADMIN,
        params={"from": "2024-05-02T00:00:00Z", "to": "2024-05-01T00:00:00Z"},
    )
    assert fields_of(assert_problem(response, 400)) == {"from"}


async def test_declared_oversized_body_is_413_before_reading(
    client: httpx.AsyncClient, doubles: Doubles
) -> None:
    product = await create_product(client)
    response = await client.post(
        f"/api/v1/products/{product['id']}/images",
        headers={**ADMIN, "Content-Type": "multipart/form-data; boundary=x"},
        content=b"x" * (11 * 1024 * 1024),
    )
    assert_problem(response, 413)
    assert doubles.rec.count("ValidateToken") == 1  # only create_product's: refused earlier
