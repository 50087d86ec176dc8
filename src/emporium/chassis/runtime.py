"""One service process: what `app.py` hands over, and the loop that serves it.

A service's `app.py` exposes `async def build(settings) -> ServiceApp`; `run_service(name)`
loads settings (exiting with one clear line on bad configuration), sets up JSON logs,
metrics and tracing, builds the app, serves gRPC (with the standard health service) and HTTP
(`/metrics`, `/healthz`, plus the service's own ASGI routes if any), runs the background tasks
(outbox relay, consumers), and on SIGTERM/SIGINT shuts down gracefully: health goes
NOT_SERVING, no new calls are taken, in-flight calls finish (within the grace period),
background tasks are stopped, then the `on_stop` callbacks close pools.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from emporium.chassis.config import ServiceSettings

# A background task runs until `stop` is set, then returns (relays, consumers, sweepers).
BackgroundTask = Callable[["StopSignal"], Awaitable[None]]


class StopSignal:
    """Set once when the process starts shutting down; background loops wait on it."""

    def __init__(self) -> None:
        import asyncio

        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds; True when stopping (handy as an interruptible sleep)."""
        import asyncio

        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True


@dataclass
class GrpcRegistration:
    """A servicer and the generated `add_XServicer_to_server` function that registers it;
    `service_name` is the full proto name (`emporium.order.v1.OrderService`) used by health."""

    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: Any
    service_name: str


@dataclass
class ServiceApp:
    """Everything a service process runs, built by the service's `app.py`."""

    name: str
    settings: ServiceSettings
    grpc_services: list[GrpcRegistration] = field(default_factory=list)
    http_app: Any | None = None  # an ASGI app mounted at / next to /metrics and /healthz
    background: list[BackgroundTask] = field(default_factory=list)
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Readiness checks run by /healthz and folded into gRPC health: name -> async check.
    checks: dict[str, Callable[[], Awaitable[bool]]] = field(default_factory=dict)
