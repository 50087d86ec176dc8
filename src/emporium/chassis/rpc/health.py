"""The standard gRPC health checking protocol (grpc.health.v1), served and checked.

Kubernetes probes, the gateway's `/api/v1/health` and the supervisor all ask the same
question the standard way. A service starts NOT_SERVING and the runtime switches it to
SERVING only once its readiness checks pass, and back to NOT_SERVING when a check fails or
shutdown begins, so load balancers stop sending calls before the server stops taking them.
"""

from __future__ import annotations

from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

SERVING: Any = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: Any = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthHandle:
    """Sets the status of the whole server (`""`) and of every registered service at once."""

    def __init__(self, servicer: Any, service_names: list[str]) -> None:
        self._servicer = servicer
        self.names = ["", *(n for n in service_names if n)]

    async def set_serving(self) -> None:
        await self._set(SERVING)

    async def set_not_serving(self) -> None:
        await self._set(NOT_SERVING)

    async def _set(self, status: Any) -> None:
        for name in self.names:
            await self._servicer.set(name, status)


def add_health(server: Any, service_names: list[str]) -> HealthHandle:
    """Register the health service on `server`; everything starts NOT_SERVING."""
    servicer = health_aio.HealthServicer()
    for name in ["", *service_names]:
        # Not yet serving: set directly, the servicer's async setter needs a running loop
        # only to wake watchers, and there are none before the server starts.
        servicer._server_status[name] = NOT_SERVING
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return HealthHandle(servicer, service_names)


async def check_health(target: str, timeout: float = 1.0, service: str = "") -> bool:
    """True only when `target` answers SERVING for `service` within `timeout` seconds;
    False on any error, unknown service or timeout (never raises)."""
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            response = await stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
            return bool(response.status == SERVING)
    except Exception:
        return False


# See chassis.rpc.client.CHANNEL_OPTIONS: quick reconnects, connections of its own.
PROBE_CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.use_local_subchannel_pool", 1),
)


class HealthProber:
    """Health checks over long-lived channels, one per target.

    `check_health` opens a fresh channel per call (a TCP + HTTP/2 handshake each time); a
    caller that probes the same backends again and again (the gateway's `/api/v1/health`)
    keeps its channels here instead, which makes a probe one round trip.
    """

    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def check(self, target: str, timeout: float = 1.0, service: str = "") -> bool:
        """Like `check_health`, over this prober's channel to `target`; never raises."""
        channel = self._channels.get(target)
        if channel is None:
            channel = self._channels[target] = grpc.aio.insecure_channel(
                target, options=list(PROBE_CHANNEL_OPTIONS)
            )
        try:
            stub = health_pb2_grpc.HealthStub(channel)
            response = await stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
            return bool(response.status == SERVING)
        except Exception:
            return False

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()
