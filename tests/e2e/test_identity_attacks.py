"""Identity under attack, on the platform started the way `make up` starts it (embedded
profile, every service its own process with its own key): forged refresh tokens, logout
without a live access token, forty concurrent guesses from forty forwarded addresses,
services calling what they must not, and a host environment full of bare variables."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest

from emporium.chassis.rpc import service_auth
from emporium.chassis.rpc.client import create_channel, domain_error_from_rpc
from emporium.chassis.rpc.identity import Caller, acting_as
from emporium.chassis.rpc.service_auth import load_identity
from emporium.contracts.rpc.auth.v1 import auth_pb2, auth_pb2_grpc
from emporium.contracts.rpc.order.v1 import order_pb2, order_pb2_grpc
from emporium.contracts.rpc.payment.v1 import payment_pb2, payment_pb2_grpc
from tests.e2e.platform import GATEWAY, running_platform, wait_healthy

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

API = f"{GATEWAY}/api/v1"
ADMIN_PASSWORD = "e2e-identity-admin-0123"
PASSWORD = "correct horse battery"
# What other software on a host sets for itself. pydantic-settings' BaseSettings read each
# into the field of the same name: every service would have bound 203.0.113.1 (and failed)
# or opened the one database named here.
BARE_VARIABLES = {
    "DATABASE_URL": "postgresql://nowhere.invalid/shared",
    "KV_URL": "redis://nowhere.invalid:1/0",
    "BUS_URL": "kafka://nowhere.invalid:1",
    "HOST": "203.0.113.1",
    "NAME": "payment",
    "LOG_LEVEL": "NOT-A-LEVEL",
    "GRPC_PORT": "1",
    "HTTP_PORT": "1",
    "DATA_DIR": "/nonexistent",
}


SPRAY_LIMIT = 8


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp: Path = tmp_path_factory.mktemp("identity")
    env = {
        **BARE_VARIABLES,
        "EMPORIUM_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "EMPORIUM_GATEWAY_RATE_LIMIT": "1000",
        # the test plays the ingress: its X-Forwarded-For is believed from loopback only
        # because this says so (the default trusts nobody)
        "EMPORIUM_GATEWAY_TRUSTED_PROXIES": "127.0.0.1",
        # fewer concurrent argon2id checks for the spraying test (and the knob works)
        "EMPORIUM_AUTH_LOGIN_LIMIT_PER_ADDRESS": str(SPRAY_LIMIT),
    }
    with running_platform(tmp, env) as platform:
        try:
            wait_healthy()
            yield platform.data_dir
        except BaseException:
            print(platform.log())
            raise


# A guess that reached auth is a 401, or a 504 when argon2id on a busy machine outlasts
# the gateway's deadline (auth still completes it): either way it was checked, not refused.
# (Forty at once on two cores: five argon2id checks, plus everyone else's load.)
CHECKED = (401, 504)


def patiently(send: Any) -> httpx.Response:
    """`send()`, again after a 504 or 503: argon2id on a loaded 2-core machine can outlast
    the gateway's deadline for auth (the attempt itself completes in auth), and a burst of
    such timeouts opens the gateway's circuit to auth for a few seconds."""
    for _ in range(8):
        response: httpx.Response = send()
        if response.status_code not in (503, 504):
            return response
        time.sleep(2)
    return response


def auth_reachable() -> None:
    """Wait until the gateway's circuit to auth is closed again: a burst of argon2id checks
    outlasting their deadline on a loaded machine opens it for a few seconds, and a burst
    sent then would be refused by the gateway (503) without ever reaching the throttle."""
    with httpx.Client(base_url=API, timeout=20) as client:
        probe = patiently(lambda: client.post("/auth/refresh", json={"refresh_token": "x"}))
    assert probe.status_code == 401, probe.text  # auth answered (no argon2id on this path)


def register_and_login(client: httpx.Client, **headers: str) -> tuple[str, dict[str, Any]]:
    email = f"id-{uuid.uuid4().hex[:10]}@example.com"
    body = {"email": email, "password": PASSWORD}
    created = patiently(lambda: client.post("/auth/register", json={**body, "name": "I"}))
    assert created.status_code in (201, 409), created.text
    login = patiently(lambda: client.post("/auth/login", json=body, headers=headers))
    assert login.status_code == 200, login.text
    return email, login.json()


def bearer(pair: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair['access_token']}"}


def test_bare_variables_in_the_environment_change_no_service(data_dir: Path) -> None:
    """The platform is healthy on its embedded defaults under the data directory."""
    assert (data_dir / "auth.sqlite3").exists()
    assert (data_dir / "payment.sqlite3").exists()
    assert not Path("/nonexistent").exists()
    assert httpx.get(f"{API}/health", timeout=5).json()["status"] == "ok"


def test_a_refresh_token_forged_from_the_access_token_ends_nothing(data_dir: Path) -> None:
    with httpx.Client(base_url=API, timeout=20) as client:
        _, pair = register_and_login(client, **{"X-Forwarded-For": "192.0.2.10"})
        sid = jwt.decode(pair["access_token"], options={"verify_signature": False})["sid"]
        forged = f"{sid}.{secrets.token_urlsafe(32)}"
        assert client.post("/auth/refresh", json={"refresh_token": forged}).status_code == 401
        assert client.post("/auth/logout", json={"refresh_token": forged}).status_code == 401
        assert client.get("/users/me", headers=bearer(pair)).status_code == 200
        rotated = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert rotated.status_code == 200, rotated.text


def test_logout_with_the_refresh_token_alone(data_dir: Path) -> None:
    with httpx.Client(base_url=API, timeout=20) as client:
        _, pair = register_and_login(client, **{"X-Forwarded-For": "192.0.2.11"})
        out = client.post("/auth/logout", json={"refresh_token": pair["refresh_token"]})
        assert out.status_code == 204, out.text
        assert client.get("/users/me", headers=bearer(pair)).status_code == 401
        again = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert again.status_code == 401


async def test_forty_concurrent_guesses_from_forty_addresses(data_dir: Path) -> None:
    """One account, forty wrong passwords at once, each from its own (forwarded) address:
    five reach the password check, the other 35 are 429 with Retry-After, and for the rest
    of the window even the right password is refused; other accounts are unaffected."""
    with httpx.Client(base_url=API, timeout=20) as sync_client:
        email, _ = register_and_login(sync_client, **{"X-Forwarded-For": "192.0.2.12"})
    await asyncio.to_thread(auth_reachable)
    async with httpx.AsyncClient(base_url=API, timeout=60) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    "/auth/login",
                    json={"email": email, "password": f"wrong guess {i:02d}"},
                    headers={"X-Forwarded-For": f"198.51.100.{i + 1}"},
                )
                for i in range(40)
            )
        )
        statuses = [a.status_code for a in answers]
        assert statuses.count(429) == 35, statuses
        assert all(s in CHECKED for s in statuses if s != 429), statuses
        assert all(
            1 <= int(a.headers["retry-after"]) <= 300 for a in answers if a.status_code == 429
        )
    await asyncio.to_thread(auth_reachable)
    with httpx.Client(base_url=API, timeout=20) as sync_client:
        right = sync_client.post(  # refused before any password check
            "/auth/login",
            json={"email": email, "password": PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.200"},
        )
        assert right.status_code == 429, right.text
    with httpx.Client(base_url=API, timeout=20) as sync_client:
        register_and_login(sync_client, **{"X-Forwarded-For": "192.0.2.13"})


async def test_one_address_spraying_many_accounts_is_throttled(data_dir: Path) -> None:
    await asyncio.to_thread(auth_reachable)
    async with httpx.AsyncClient(base_url=API, timeout=60) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    "/auth/login",
                    json={"email": f"spray-{i}@example.com", "password": "spray password 1"},
                    headers={"X-Forwarded-For": "203.0.113.66"},
                )
                for i in range(SPRAY_LIMIT + 4)
            )
        )
    statuses = [a.status_code for a in answers]
    assert statuses.count(429) == 4, statuses
    assert all(s in CHECKED for s in statuses if s != 429), statuses


async def grpc_outcome(data_dir: Path, identity: str | None, call: Any, caller: Caller) -> Any:
    """Call a backend as the process `identity` would (its key from the data directory)."""
    service_auth.install(None if identity is None else load_identity(identity, data_dir, {}))
    try:
        with acting_as(caller):
            return await call()
    except grpc.aio.AioRpcError as exc:
        return domain_error_from_rpc(exc)
    finally:
        service_auth.install(None)


def admin_token() -> str:
    with httpx.Client(base_url=API, timeout=20) as client:
        admin = patiently(
            lambda: client.post(
                "/auth/login",
                json={"email": "admin@emporium.local", "password": ADMIN_PASSWORD},
                headers={"X-Forwarded-For": "192.0.2.14"},
            )
        )
    assert admin.status_code == 200, admin.text
    return str(admin.json()["access_token"])


async def test_only_order_may_move_money_and_headers_alone_prove_nothing(data_dir: Path) -> None:
    await asyncio.to_thread(auth_reachable)
    token = await asyncio.to_thread(admin_token)
    async with create_channel("127.0.0.1:50054", service="e2e") as payment_channel:
        payment = payment_pb2_grpc.PaymentServiceStub(payment_channel)

        async def charge() -> Any:
            return await payment.Charge(payment_pb2.ChargeRequest(), timeout=10)

        as_admin = Caller("admin", frozenset({"admin"}), token)
        for identity, caller in (
            ("api_gateway", as_admin),
            ("api_gateway", Caller.system("api_gateway")),
            ("cdn", Caller.system("cdn")),
            ("cdn", Caller.system("order")),  # refused by the table, whatever it claims
        ):
            denied = await grpc_outcome(data_dir, identity, charge, caller)
            assert denied.code.value == "permission_denied", (identity, denied)
        mallory = Caller("mallory", frozenset({"admin", "system"}))
        refused = await grpc_outcome(data_dir, None, charge, mallory)  # headers, no proof
        assert refused.code.value == "unauthenticated", refused
        by_order = await grpc_outcome(data_dir, "order", charge, Caller.system("order"))
        assert by_order.code.value == "invalid_argument", by_order  # past the table: the handler
    async with create_channel("127.0.0.1:50052", service="e2e") as order_channel:
        orders = order_pb2_grpc.OrderServiceStub(order_channel)

        async def get_order() -> Any:
            return await orders.GetOrder(order_pb2.GetOrderRequest(order_id="x"), timeout=10)

        operator = await grpc_outcome(data_dir, "operator", get_order, Caller.system("operator"))
        assert operator.code.value == "permission_denied", operator
    async with create_channel("127.0.0.1:50060", service="e2e") as auth_channel:
        auth = auth_pb2_grpc.AuthServiceStub(auth_channel)

        async def jwks() -> Any:
            return await auth.GetJwks(auth_pb2.GetJwksRequest(), timeout=10)

        assert (await grpc_outcome(data_dir, "cdn", jwks, Caller.system("cdn"))).keys
        # cdn may ask for the JWKS, but its key cannot make it order
        posing = await grpc_outcome(data_dir, "cdn", jwks, Caller.system("order"))
        assert posing.code.value == "unauthenticated", posing
