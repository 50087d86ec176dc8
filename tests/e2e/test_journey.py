"""A shopper's whole journey over the public REST API (API.md), on the platform started the
way `make up` starts it: once on the embedded profile (with the demo catalog) and once on the
production adapters CI provides (PostgreSQL, Redis, Kafka)."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from PIL import Image

from tests.e2e.platform import GATEWAY, running_platform, wait_healthy
from tests.e2e.profiles import production_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ADMIN_EMAIL = "admin@emporium.local"
ADMIN_PASSWORD = "e2e-admin-password-0123"
EVENTUAL_SECONDS = 15.0
T = TypeVar("T")


def eventually(probe: Callable[[], T | None], what: str) -> T:
    """Poll an eventually consistent view until `probe` returns something truthy."""
    deadline = time.monotonic() + EVENTUAL_SECONDS
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {EVENTUAL_SECONDS}s: {what}")
        time.sleep(0.2)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def rejected(response: httpx.Response) -> dict[str, Any]:
    """Bad input: 400 or 422 problem+json (API.md allows either for validation)."""
    assert response.status_code in (400, 422), response.text
    return problem(response, response.status_code)


def field_names(body: dict[str, Any]) -> set[str]:
    return {str(e.get("field", "")) for e in body.get("errors", [])}


def png(width: int = 400, height: int = 300) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 140, 90)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module", params=["embedded", "production"])
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp(f"journey-{request.param}")
    # The demo loader and this test share one client IP; the rate limit has its own tests.
    env = {"EMPORIUM_ADMIN_PASSWORD": ADMIN_PASSWORD, "EMPORIUM_GATEWAY_RATE_LIMIT": "1000"}
    with production_env(request.param) as extra:
        env.update(extra)
        with running_platform(tmp, env, demo=request.param == "embedded") as running:
            failed_before = request.session.testsfailed
            try:
                wait_healthy()
                yield request.param
            except BaseException:
                print(running.log())
                print(failed_calls())
                raise
            # A failed test is not raised into its fixture: say what the services logged.
            if request.session.testsfailed > failed_before:
                print(running.log())
                print(running.service_logs())


def failed_calls() -> str:
    """Every non-OK gRPC outcome counted by the services' metrics (for a failing run)."""
    from emporium.chassis.catalog import SERVICES

    lines = []
    for info in SERVICES:
        try:
            text = httpx.get(f"http://127.0.0.1:{info.http_port}/metrics", timeout=2).text
        except httpx.HTTPError as exc:
            lines.append(f"{info.name}: metrics unavailable ({exc})")
            continue
        lines += [
            line
            for line in text.splitlines()
            if "requests_total{" in line and 'code="OK"' not in line and "rpc" in line
        ]
    return "\n".join(lines)


def login(client: httpx.Client, email: str, password: str) -> dict[str, str]:
    answer = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    tokens: dict[str, str] = answer.json()
    assert tokens["token_type"] == "bearer"
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def test_the_whole_journey(platform: str) -> None:
    run = uuid.uuid4().hex[:8]
    client = httpx.Client(base_url=GATEWAY, timeout=20.0)
    admin = login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))

    # --- a shopper registers, signs in, edits the profile, adds an address --------------
    email, password = f"shopper-{run}@example.com", "correct horse battery"
    reg = client.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "name": "Ada"}
    )
    assert reg.status_code == 201, reg.text
    assert reg.json()["email"] == email
    user_id = reg.json()["id"]
    problem(
        client.post(
            "/api/v1/auth/register", json={"email": email, "password": password, "name": "Ada"}
        ),
        409,
    )
    weak = client.post(
        "/api/v1/auth/register",
        json={"email": f"w-{run}@example.com", "password": "short", "name": "W"},
    )
    assert "password" in field_names(rejected(weak))
    wrong = client.post("/api/v1/auth/login", json={"email": email, "password": "wrong password!"})
    problem(wrong, 401)
    shopper = login(client, email, password)
    me = client.get("/api/v1/users/me", headers=shopper).json()
    assert me["id"] == user_id
    assert me["email"] == email
    assert "admin" not in me["roles"]
    assert (
        client.patch("/api/v1/users/me", json={"name": "Ada L."}, headers=shopper).json()["name"]
        == "Ada L."
    )
    address = {
        "line1": "1 Analytical St",
        "city": "London",
        "postal_code": "N1 9GU",
        "country": "GB",
    }
    assert (
        client.post("/api/v1/users/me/addresses", json=address, headers=shopper).status_code == 201
    )
    addresses = client.get("/api/v1/users/me/addresses", headers=shopper).json()
    assert [a["city"] for a in addresses["items"]] == ["London"]
    problem(client.get("/api/v1/users/me"), 401)

    # --- the administrator builds the catalog -------------------------------------------
    category = f"e2e{run}"

    def create(sku: str, name: str, price: int) -> dict[str, Any]:
        body = {
            "sku": sku,
            "name": name,
            "description": f"{name} for the journey",
            "category": category,
            "price_minor": price,
            "currency": "USD",
        }
        answer = client.post("/api/v1/products", json=body, headers=admin)
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    phones = create(f"HP-{run}", f"Headphones {run}", 5999)
    cable = create(f"CB-{run}", f"Cable {run}", 999)
    doomed = create(f"DM-{run}", f"Doomed {run}", 100)
    assert phones["price_minor"] == 5999
    problem(
        client.post(
            "/api/v1/products",
            json={
                "sku": f"HP-{run}",
                "name": "x",
                "description": "x",
                "category": category,
                "price_minor": 1,
                "currency": "USD",
            },
            headers=admin,
        ),
        409,
    )
    problem(client.post("/api/v1/products", json={"sku": "x"}, headers=shopper), 403)
    bad = client.post(
        "/api/v1/products",
        json={
            "sku": f"BAD-{run}",
            "name": "x",
            "description": "x",
            "category": category,
            "price_minor": -5,
            "currency": "USD",
        },
        headers=admin,
    )
    assert "price_minor" in field_names(rejected(bad))
    assert client.get(f"/api/v1/products/{phones['id']}").json()["sku"] == f"HP-{run}"

    stock = client.put(
        f"/api/v1/inventory/HP-{run}", json={"on_hand": 10, "low_stock_threshold": 8}, headers=admin
    )
    assert stock.json() == {
        "sku": f"HP-{run}",
        "on_hand": 10,
        "reserved": 0,
        "available": 10,
        "low_stock_threshold": 8,
    }
    assert (
        client.put(f"/api/v1/inventory/CB-{run}", json={"on_hand": 50}, headers=admin).status_code
        == 200
    )
    problem(client.put(f"/api/v1/inventory/CB-{run}", json={"on_hand": 5}, headers=shopper), 403)
    problem(client.get(f"/api/v1/inventory/NOPE-{run}"), 404)

    # --- images through cdn-service ------------------------------------------------------
    upload = client.post(
        f"/api/v1/products/{phones['id']}/images",
        files={"file": ("p.png", png(), "image/png")},
        headers=admin,
    )
    assert upload.status_code == 201, upload.text
    url = upload.json()["url"]
    image = httpx.get(url)
    assert image.status_code == 200
    assert image.headers["cache-control"]
    etag = image.headers["etag"]
    assert httpx.get(url, headers={"If-None-Match": etag}).status_code == 304
    small = httpx.get(url, params={"w": "64"})
    with Image.open(io.BytesIO(small.content)) as thumb:
        assert thumb.size[0] == 64
    problem(
        client.post(
            f"/api/v1/products/{phones['id']}/images",
            files={"file": ("p.png", b"not an image at all", "image/png")},
            headers=admin,
        ),
        415,
    )
    assert url in client.get(f"/api/v1/products/{phones['id']}").json()["image_urls"]

    # --- search catches up with product.updated ------------------------------------------
    def search(**params: Any) -> dict[str, Any]:
        answer = client.get("/api/v1/search", params=params)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    found = eventually(lambda: search(q=f"headphones {run}")["items"] or None, "product in search")
    assert found[0]["id"] == phones["id"]
    typo = eventually(
        lambda: search(q="headphnes", category=category)["items"] or None, "typo tolerance"
    )
    assert typo[0]["id"] == phones["id"]
    facets = eventually(
        lambda: (r := search(category=category))["total"] == 3 and r, "three products indexed"
    )
    assert facets["facets"]["category"][category] == 3
    cheap = search(category=category, max_price=1000)
    assert {p["id"] for p in cheap["items"]} == {cable["id"], doomed["id"]}
    page = search(category=category, limit=2, sort="price_asc")
    assert len(page["items"]) == 2
    assert page["next_cursor"]
    rest = search(category=category, limit=2, sort="price_asc", cursor=page["next_cursor"])
    assert [p["id"] for p in rest["items"]] == [phones["id"]]
    assert client.delete(f"/api/v1/products/{doomed['id']}", headers=admin).status_code == 204
    problem(client.get(f"/api/v1/products/{doomed['id']}"), 404)
    eventually(lambda: search(category=category)["total"] == 2, "deleted product leaves the index")

    # --- orders: paid, replayed, declined, out of stock ----------------------------------
    def order(
        key: str, quantity: int, token: str, product: dict[str, Any] = phones
    ) -> httpx.Response:
        body = {
            "items": [{"product_id": product["id"], "quantity": quantity}],
            "payment_token": token,
            "shipping_address": address,
        }
        return client.post("/api/v1/orders", json=body, headers={**shopper, "Idempotency-Key": key})

    paid = order(f"k1-{run}", 2, "tok_visa")
    assert paid.status_code == 201, paid.text
    paid_body = paid.json()
    assert paid_body["status"] == "PAID"
    assert paid_body["total_minor"] == 2 * 5999
    assert paid_body["items"][0]["unit_price_minor"] == 5999
    replay = order(f"k1-{run}", 2, "tok_visa")
    assert replay.json()["id"] == paid_body["id"]
    declined = order(f"k2-{run}", 1, "tok_chargeDeclined")
    assert declined.json()["status"] == "CANCELLED"
    assert declined.json()["payment"]["status"] == "DECLINED"
    too_many = order(f"k3-{run}", 9, "tok_visa")
    assert problem(too_many, 409)["type"].endswith("out_of_stock")
    stock_now = client.get(f"/api/v1/inventory/HP-{run}").json()
    assert stock_now["on_hand"] == 8
    assert stock_now["reserved"] == 0
    assert stock_now["available"] == 8
    assert "payment_token" in field_names(rejected(order(f"k4-{run}", 1, "tok_unknown")))
    no_items = client.post(
        "/api/v1/orders",
        json={"items": [], "payment_token": "tok_visa", "shipping_address": address},
        headers={**shopper, "Idempotency-Key": f"k5-{run}"},
    )
    assert any(f.startswith("items") for f in field_names(rejected(no_items)))

    mine = client.get("/api/v1/orders", headers=shopper).json()["items"]
    assert paid_body["id"] in {o["id"] for o in mine}
    other_email = f"other-{run}@example.com"
    client.post(
        "/api/v1/auth/register", json={"email": other_email, "password": password, "name": "Bob"}
    )
    other = login(client, other_email, password)
    problem(client.get(f"/api/v1/orders/{paid_body['id']}", headers=other), 404)
    assert client.get(f"/api/v1/orders/{paid_body['id']}", headers=admin).status_code == 200

    # --- eventually consistent views -------------------------------------------------------
    def kinds() -> set[str] | None:
        items = client.get("/api/v1/notifications", headers=shopper).json()["items"]
        found = {n["kind"] for n in items}
        return found if {"welcome", "order_confirmation", "payment_receipt"} <= found else None

    eventually(kinds, "welcome, order confirmation and payment receipt notifications")
    recs = client.get("/api/v1/recommendations", params={"product_id": cable["id"]}).json()["items"]
    assert cable["id"] not in {r["product_id"] for r in recs}
    assert doomed["id"] not in {r["product_id"] for r in recs}

    def sales() -> dict[str, Any] | None:
        body = client.get(
            "/api/v1/analytics/sales", params={"from": started_at}, headers=admin
        ).json()
        return body if body["paid_orders"] >= 1 else None

    report = eventually(sales, "paid order in the sales report")
    assert report["revenue_minor"] >= 2 * 5999
    top = eventually(
        lambda: [
            i
            for i in client.get(
                "/api/v1/analytics/top-products", params={"from": started_at}, headers=admin
            ).json()["items"]
            if i["product_id"] == phones["id"]
        ],
        "headphones among top products",
    )
    assert top[0]["units"] == 2
    eventually(
        lambda: [
            i
            for i in client.get("/api/v1/analytics/low-stock", headers=admin).json()["items"]
            if i["sku"] == f"HP-{run}"
        ],
        "inventory.low for the headphones",
    )
    problem(client.get("/api/v1/analytics/sales", headers=shopper), 403)

    # --- logout kills the token at once -----------------------------------------------------
    assert client.post("/api/v1/auth/logout", headers=shopper).status_code == 204
    problem(client.get("/api/v1/users/me", headers=shopper), 401)

    if platform == "embedded":  # the demo catalog `make up` loads on first start
        deadline = time.monotonic() + 120
        total = 0
        while time.monotonic() < deadline and total < 200:
            total = client.get("/api/v1/search", params={"limit": 1}).json()["total"]
            time.sleep(1)
        assert total >= 200
