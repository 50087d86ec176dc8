"""The service runtime: serves gRPC + health + /metrics + /healthz, follows readiness checks,
restarts a crashed background loop, and shuts down gracefully (in-flight calls finish)."""

from __future__ import annotations

import asyncio
import socket

import grpc
import httpx
import pytest

from emporium.chassis.config import load_settings
from emporium.chassis.rpc import service_auth
from emporium.chassis.rpc.acl import CallerTable
from emporium.chassis.rpc.health import check_health
from emporium.chassis.rpc.service_auth import SERVICE_PROOF_KEY, load_identity
from emporium.chassis.runtime import GrpcRegistration, ServiceApp, StopSignal, serve

SLOW_CALL_SECONDS = 0.5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SlowServicer:
    """A generic handler with one slow unary method, registered without protoc."""

    def __init__(self) -> None:
        self.finished = 0

    async def slow(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await asyncio.sleep(SLOW_CALL_SECONDS)
        self.finished += 1
        return b"done:" + request


def register(servicer: SlowServicer, server: grpc.aio.Server) -> None:
    handler = grpc.unary_unary_rpc_method_handler(servicer.slow)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("test.Slow", {"Slow": handler}),)
    )


@pytest.fixture
def settings(tmp_path):
    grpc_port, http_port = free_port(), free_port()
    return load_settings(
        "order",
        {
            "EMPORIUM_DATA_DIR": str(tmp_path),
            "EMPORIUM_ORDER_GRPC_PORT": str(grpc_port),
            "EMPORIUM_ORDER_HTTP_PORT": str(http_port),
            "EMPORIUM_ORDER_SHUTDOWN_GRACE_SECONDS": "5",
        },
    )


async def wait_until(predicate, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


async def test_serves_follows_checks_and_stops_gracefully(settings):
    servicer = SlowServicer()
    ready = {"database": True}
    crashes: list[int] = []
    loops_stopped = asyncio.Event()
    closed: list[str] = []

    async def flaky_loop(stop: StopSignal) -> None:
        if len(crashes) < 1:
            crashes.append(1)
            raise RuntimeError("broker hiccup")
        await stop.wait()
        loops_stopped.set()

    async def database_check() -> bool:
        return ready["database"]

    async def close_pool() -> None:
        closed.append("pool")

    async def build(s):
        return ServiceApp(
            name="order",
            settings=s,
            grpc_services=[GrpcRegistration(register, servicer, "test.Slow")],
            background=[flaky_loop],
            on_stop=[close_pool],
            checks={"database": database_check},
            callers=[CallerTable("test.Slow", {"Slow": frozenset({"order"})})],
        )

    stop = StopSignal()
    served = asyncio.create_task(serve(build, settings, stop))
    target = f"127.0.0.1:{settings.grpc_port}"
    base = f"http://127.0.0.1:{settings.http_port}"

    async def serving() -> bool:
        return await check_health(target, timeout=0.5)

    await wait_until(serving)
    async with httpx.AsyncClient(base_url=base) as http:
        assert (await http.get("/healthz")).json()["checks"] == {"database": "ok"}
        ready["database"] = False
        assert (await http.get("/healthz")).status_code == 503
        # Liveness ignores dependencies: a database outage must not restart the pod.
        livez = await http.get("/livez")
        assert (livez.status_code, livez.json()["status"]) == (200, "ok")

        async def not_serving() -> bool:
            return not await check_health(target, timeout=0.5)

        await wait_until(not_serving)
        ready["database"] = True
        await wait_until(serving)
        metrics = (await http.get("/metrics")).text
        assert "emporium_http_requests_total" in metrics

    assert crashes == [1]  # the loop crashed once and was restarted
    identity = load_identity("order", settings.data_dir, {})
    service_auth.install(identity)  # the server checks proofs with the process's keyring
    proof = [(SERVICE_PROOF_KEY, identity.proof_for("order"))]
    async with grpc.aio.insecure_channel(target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as unproven:  # the callers table is enforced
            await channel.unary_unary("/test.Slow/Slow")(b"x", timeout=10)
        assert unproven.value.code() == grpc.StatusCode.UNAUTHENTICATED
        call = channel.unary_unary("/test.Slow/Slow")(b"x", timeout=10, metadata=proof)
        await asyncio.sleep(0.1)  # the call is in flight
        stop.set()
        assert await call == b"done:x"
    await asyncio.wait_for(served, 15)
    service_auth.install(None)
    assert servicer.finished == 1
    assert loops_stopped.is_set()
    assert closed == ["pool"]
    for port in (settings.grpc_port, settings.http_port):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT
            sock.bind(("127.0.0.1", port))  # fails while anything still listens


async def test_uvicorn_never_believes_forwarded_headers(settings, monkeypatch):
    """uvicorn's default trusts X-Forwarded-For from 127.0.0.1 (and FORWARDED_ALLOW_IPS
    can widen it): the runtime turns that off, so a process on the host cannot choose the
    client address the gateway sees (the gateway decides, from its trusted proxies)."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")

    async def whoami(request):
        return JSONResponse({"client": request.client.host, "scheme": request.url.scheme})

    async def build(s):
        return ServiceApp(
            name="api_gateway", settings=s, http_app=Starlette(routes=[Route("/whoami", whoami)])
        )

    stop = StopSignal()
    served = asyncio.create_task(serve(build, settings, stop))
    base = f"http://127.0.0.1:{settings.http_port}"
    try:
        async with httpx.AsyncClient(base_url=base) as http:

            async def up() -> bool:
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_until(up)
            seen = await http.get(
                "/whoami",
                headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
            )
        assert seen.json() == {"client": "127.0.0.1", "scheme": "http"}
    finally:
        stop.set()
        await asyncio.wait_for(served, 15)


async def test_a_service_without_a_callers_table_does_not_start(settings):
    async def build(s):
        return ServiceApp(
            name="order",
            settings=s,
            grpc_services=[GrpcRegistration(register, SlowServicer(), "test.Slow")],
        )

    with pytest.raises(SystemExit, match=r"no callers table for test\.Slow"):
        await serve(build, settings, StopSignal())
