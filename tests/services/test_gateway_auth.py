"""Authentication, authorization, rate limiting and failure mapping at the gateway's edge:
401 without a valid token (checked with auth-service on every request), 403 for non-admins
on admin routes, 429 with `Retry-After`, 503 for an unreachable backend, never a 500 for
a client's mistake, and `X-Request-Id` on every response of the running app."""

from __future__ import annotations

import asyncio

import grpc
import httpx
import pytest

from emporium.chassis.config import load_settings
from emporium.chassis.runtime import ServiceApp, http_app
from emporium.services.api_gateway.app import close_api, create_api
from emporium.services.api_gateway.forwarded import TrustedProxies
from emporium.services.api_gateway.ratelimit import RateLimits, TokenBucketLimiter
from tests.services.gateway_doubles import (
    ADMIN_TOKEN,
    SHOPPER_TOKEN,
    Doubles,
    bearer,
    gateway_client,
)

PROBLEM = "application/problem+json"
USER_ROUTES = [
    ("POST", "/api/v1/auth/logout"),
    ("GET", "/api/v1/users/me"),
    ("PATCH", "/api/v1/users/me"),
    ("GET", "/api/v1/users/me/addresses"),
    ("POST", "/api/v1/users/me/addresses"),
    ("POST", "/api/v1/orders"),
    ("GET", "/api/v1/orders"),
    ("GET", "/api/v1/orders/o-1"),
    ("POST", "/api/v1/orders/o-1/cancel"),
    ("GET", "/api/v1/notifications"),
]
ADMIN_ROUTES = [
    ("POST", "/api/v1/products"),
    ("PATCH", "/api/v1/products/p-1"),
    ("DELETE", "/api/v1/products/p-1"),
    ("POST", "/api/v1/products/p-1/images"),
    ("PUT", "/api/v1/inventory/HEAD-1"),
    ("GET", "/api/v1/analytics/sales"),
    ("GET", "/api/v1/analytics/top-products"),
    ("GET", "/api/v1/analytics/low-stock"),
]


def route_id(route: tuple[str, str]) -> str:
    return f"{route[0]} {route[1]}"


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, object] = response.json()
    assert body["status"] == status
    return body


@pytest.mark.parametrize("route", USER_ROUTES + ADMIN_ROUTES, ids=route_id)
async def test_no_token_is_401(
    client: httpx.AsyncClient, doubles: Doubles, route: tuple[str, str]
) -> None:
    method, path = route
    response = await client.request(method, path)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert doubles.rec.calls == []  # refused before any backend call


@pytest.mark.parametrize(
    "authorization", ["Bearer unknown-token", "Basic dXNlcjpwdw==", "Bearer "], ids=str
)
async def test_invalid_or_malformed_token_is_401(
    client: httpx.AsyncClient, authorization: str
) -> None:
    response = await client.get("/api/v1/users/me", headers={"Authorization": authorization})
    assert_problem(response, 401)


@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=route_id)
async def test_non_admin_is_403_on_admin_routes(
    client: httpx.AsyncClient, doubles: Doubles, route: tuple[str, str]
) -> None:
    method, path = route
    response = await client.request(method, path, headers=bearer(SHOPPER_TOKEN))
    assert_problem(response, 403)
    assert [name for name, _, _ in doubles.rec.calls] == ["ValidateToken"]


async def test_a_token_presented_on_an_optional_route_must_be_valid(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/recommendations", headers=bearer("garbage"))
    assert_problem(response, 401)


async def test_token_is_validated_with_auth_on_every_request(
    client: httpx.AsyncClient, doubles: Doubles
) -> None:
    for _ in range(3):
        assert (await client.get("/api/v1/users/me", headers=bearer(SHOPPER_TOKEN))).is_success
    assert doubles.rec.count("ValidateToken") == 3
    validate, caller = doubles.rec.last("ValidateToken")
    assert validate.access_token == SHOPPER_TOKEN
    assert validate.omit_email  # the gateway needs who is calling, not the account's email
    assert not caller.is_authenticated  # validation is not made on anyone's behalf


async def test_client_ip_rate_limit_is_429_with_retry_after(doubles: Doubles) -> None:
    limits = RateLimits(client_rate=0.01, client_burst=3)
    async with gateway_client(doubles.targets(), limits) as client:
        answers = [(await client.get("/api/v1/inventory/none")).status_code for _ in range(4)]
        limited = await client.get("/api/v1/inventory/none")

    assert answers[:3] == [404, 404, 404]
    assert answers[3] == 429
    assert_problem(limited, 429)
    assert int(limited.headers["retry-after"]) >= 1


async def test_login_is_limited_per_account_and_per_address(doubles: Doubles) -> None:
    limits = RateLimits(
        login_rate=0.001, login_burst=2, login_address_rate=0.001, login_address_burst=4
    )
    wrong = {"email": "shopper@example.com", "password": "not the password"}
    async with gateway_client(doubles.targets(), limits) as client:
        answers = [
            (await client.post("/api/v1/auth/login", json=wrong)).status_code for _ in range(2)
        ]
        limited = await client.post("/api/v1/auth/login", json=wrong)
        others = [
            await client.post(
                "/api/v1/auth/login", json={"email": f"o{i}@example.com", "password": "x"}
            )
            for i in range(3)
        ]

    assert answers == [401, 401]
    assert_problem(limited, 429)
    assert int(limited.headers["retry-after"]) >= 1
    # other accounts from the same address: two more fit in the address's budget of four
    assert [r.status_code for r in others] == [401, 401, 429]
    assert doubles.rec.count("Login") == 4  # the limited attempts never reached auth


async def test_forty_concurrent_guesses_from_forty_forwarded_addresses(doubles: Doubles) -> None:
    """Through a trusted proxy each guess has its own client address; the account's budget
    (ten) still caps how many reach auth."""
    wrong = {"email": "shopper@example.com", "password": "not the password"}
    trusted = TrustedProxies.parse("127.0.0.1")
    async with gateway_client(doubles.targets(), trusted_proxies=trusted) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    "/api/v1/auth/login",
                    json=wrong,
                    headers={"X-Forwarded-For": f"198.51.100.{i}"},
                )
                for i in range(40)
            )
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [401] * 10 + [429] * 30
    assert doubles.rec.count("Login") == 10
    seen = {request.client_ip for name, request, _ in doubles.rec.calls if name == "Login"}
    assert len(seen) == 10
    assert all(ip.startswith("198.51.100.") for ip in seen)


async def test_forwarded_headers_are_ignored_unless_the_peer_is_a_trusted_proxy(
    doubles: Doubles,
) -> None:
    creds = {"email": "shopper@example.com", "password": "correct horse battery"}
    spoof = {"X-Forwarded-For": "203.0.113.5", "Forwarded": "for=203.0.113.6"}
    async with gateway_client(doubles.targets()) as client:
        assert (
            await client.post("/api/v1/auth/login", json=creds, headers=spoof)
        ).status_code == 200
    assert doubles.rec.last("Login")[0].client_ip == "127.0.0.1"
    other_proxy = TrustedProxies.parse("10.0.0.0/8")
    async with gateway_client(doubles.targets(), trusted_proxies=other_proxy) as client:
        await client.post("/api/v1/auth/login", json=creds, headers=spoof)
    assert doubles.rec.last("Login")[0].client_ip == "127.0.0.1"
    async with gateway_client(
        doubles.targets(), trusted_proxies=TrustedProxies.parse("127.0.0.1")
    ) as client:
        await client.post("/api/v1/auth/login", json=creds, headers=spoof)
    assert doubles.rec.last("Login")[0].client_ip == "203.0.113.6"  # Forwarded wins


async def test_the_client_rate_limit_keys_on_the_forwarded_client(doubles: Doubles) -> None:
    limits = RateLimits(client_rate=0.01, client_burst=2)
    trusted = TrustedProxies.parse("127.0.0.1")

    def via(ip: str) -> dict[str, str]:
        return {"X-Forwarded-For": ip}

    async with gateway_client(doubles.targets(), limits, trusted) as client:
        first = [
            (await client.get("/api/v1/inventory/none", headers=via("192.0.2.1"))).status_code
            for _ in range(3)
        ]
        other = await client.get("/api/v1/inventory/none", headers=via("192.0.2.2"))
    assert first == [404, 404, 429]
    assert other.status_code == 404
    async with gateway_client(doubles.targets(), limits) as client:  # nobody trusted
        spoofed = [
            (await client.get("/api/v1/inventory/none", headers=via(f"192.0.2.{i}"))).status_code
            for i in range(3)
        ]
    assert spoofed == [404, 404, 429]


async def test_auth_service_throttle_is_429_with_retry_after(
    client: httpx.AsyncClient, doubles: Doubles
) -> None:
    doubles.auth.failed_logins_limit = 0
    response = await client.post(
        "/api/v1/auth/login", json={"email": "shopper@example.com", "password": "whatever"}
    )
    assert_problem(response, 429)
    assert response.headers["retry-after"] == "124"  # the rest of auth's window, rounded up


async def test_unreachable_backend_is_503(doubles: Doubles) -> None:
    async with gateway_client(doubles.targets(product="127.0.0.1:1")) as client:
        response = await client.get("/api/v1/products/p-1")
    assert_problem(response, 503)


async def test_unreachable_auth_is_503_not_401(doubles: Doubles) -> None:
    async with gateway_client(doubles.targets(auth="127.0.0.1:1")) as client:
        response = await client.get("/api/v1/users/me", headers=bearer(SHOPPER_TOKEN))
    assert_problem(response, 503)


async def test_backend_without_the_rpc_is_501_not_500(doubles: Doubles) -> None:
    empty = grpc.aio.server()
    port = empty.add_insecure_port("127.0.0.1:0")
    await empty.start()
    try:
        async with gateway_client(doubles.targets(search=f"127.0.0.1:{port}")) as client:
            response = await client.get("/api/v1/search", params={"q": "x"})
    finally:
        await empty.stop(None)
    assert_problem(response, 501)


async def test_request_id_on_every_response_of_the_running_app(doubles: Doubles) -> None:
    """The runtime wraps the gateway in TracingMiddleware: success, problem and 429 alike."""
    api = create_api(doubles.targets(), RateLimits(client_rate=0.01, client_burst=2))
    app = http_app(ServiceApp("api_gateway", load_settings("api_gateway", {}), http_app=api))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            ok = await client.get("/api/v1/recommendations")
            echoed = await client.get("/api/v1/products/none", headers={"X-Request-Id": "req-42"})
            limited = await client.get("/api/v1/recommendations")
            openapi = await client.get("/openapi.json")
    finally:
        await close_api(api)

    assert ok.status_code == 200
    assert ok.headers["x-request-id"]
    assert (echoed.status_code, echoed.headers["x-request-id"]) == (404, "req-42")
    assert limited.status_code == 429
    assert limited.headers["x-request-id"]
    assert openapi.headers["x-request-id"]  # (also limited by now: 429)


def test_token_bucket_refills_with_time() -> None:
    now = [0.0]
    bucket = TokenBucketLimiter(rate=2.0, burst=2, clock=lambda: now[0])

    assert [bucket.acquire("ip") for _ in range(2)] == [0.0, 0.0]
    assert bucket.acquire("ip") == pytest.approx(0.5)
    assert bucket.acquire("other") == 0.0  # buckets are per key
    now[0] += 0.5
    assert bucket.acquire("ip") == 0.0


def test_token_bucket_table_is_bounded() -> None:
    bucket = TokenBucketLimiter(rate=1.0, burst=1, clock=lambda: 0.0, max_keys=2)
    for key in ("a", "b", "c"):
        bucket.acquire(key)
    assert bucket.acquire("a") == 0.0  # "a" was evicted, so it starts with a full bucket
    assert bucket.acquire("c") > 0.0


async def test_admin_token_passes_admin_routes(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/analytics/low-stock", headers=bearer(ADMIN_TOKEN))
    assert response.status_code == 200
