"""The gateway's platform health (API.md): 200 with every backend `ok` only when all eleven
answer the standard gRPC health check, 503 with the same shape naming the one that does not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import httpx
import pytest

from emporium.chassis.catalog import BACKENDS
from emporium.chassis.rpc.health import add_health
from emporium.services.api_gateway.app import create_api


@pytest.fixture
async def backends() -> AsyncIterator[dict[str, tuple[str, object]]]:
    """One real gRPC server with the health service per backend, on free ports."""
    servers: dict[str, tuple[str, object]] = {}
    started: list[grpc.aio.Server] = []
    for backend in BACKENDS:
        server = grpc.aio.server()
        handle = add_health(server, [f"emporium.{backend.name}.v1.Service"])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        await handle.set_serving()
        started.append(server)
        servers[backend.name] = (f"127.0.0.1:{port}", handle)
    yield servers
    for server in started:
        await server.stop(None)


async def get_health(targets: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_api(targets))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return await client.get("/api/v1/health")


async def test_all_backends_serving_is_ok(backends: dict[str, tuple[str, object]]) -> None:
    response = await get_health({name: target for name, (target, _) in backends.items()})

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["services"] == {b.name: "ok" for b in BACKENDS}


async def test_one_backend_not_serving_is_503(backends: dict[str, tuple[str, object]]) -> None:
    _, order_health = backends["order"]
    await order_health.set_not_serving()  # type: ignore[attr-defined]

    response = await get_health({name: target for name, (target, _) in backends.items()})

    assert response.status_code == 503
    body = response.json()
    assert body["services"]["order"] != "ok"
    assert {k for k, v in body["services"].items() if v == "ok"} == {
        b.name for b in BACKENDS if b.name != "order"
    }
    assert body["status"] != "ok"


async def test_unreachable_backend_is_503(backends: dict[str, tuple[str, object]]) -> None:
    targets = {name: target for name, (target, _) in backends.items()}
    targets["payment"] = "127.0.0.1:1"  # nothing listens there

    response = await get_health(targets)

    assert response.status_code == 503
    assert response.json()["services"]["payment"] != "ok"
