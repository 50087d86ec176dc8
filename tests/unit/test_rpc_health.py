"""The standard gRPC health service: a server starts NOT_SERVING, the handle switches the
whole server and each named service, and `check_health` answers False instead of raising."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from emporium.chassis.rpc.health import HealthHandle, add_health, check_health
from emporium.chassis.rpc.server import create_server

NAME = "emporium.test.v1.TestService"


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, HealthHandle]]:
    server: Any = create_server("health-test")
    handle = add_health(server, [NAME])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", handle
    await server.stop(None)


async def test_starts_not_serving_then_follows_the_handle(
    served: tuple[str, HealthHandle],
) -> None:
    target, handle = served
    assert not await check_health(target)

    await handle.set_serving()
    assert await check_health(target)
    assert await check_health(target, service=NAME)

    await handle.set_not_serving()
    assert not await check_health(target)
    assert not await check_health(target, service=NAME)


async def test_unknown_service_name_is_not_healthy(served: tuple[str, HealthHandle]) -> None:
    target, handle = served
    await handle.set_serving()
    assert not await check_health(target, service="emporium.nope.v1.Nothing")


async def test_unreachable_target_is_false_not_an_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connection refused
        assert not await check_health(f"127.0.0.1:{port}", timeout=0.5)
