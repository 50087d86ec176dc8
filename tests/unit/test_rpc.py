"""The chassis gRPC server and client against a real in-process grpc.aio server on loopback:
deadlines, retries, the circuit breaker, error mapping, identity, trace context and metrics.

The test service is registered with grpc's generic handlers and raw bytes, so no proto."""

from __future__ import annotations

import json
import logging
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY
from pydantic import BaseModel, Field

from emporium.chassis.errors import DomainError, ErrorCode, FieldError, conflict, unauthenticated
from emporium.chassis.logging import request_id_var
from emporium.chassis.rpc.breaker import BreakerState, CircuitBreaker
from emporium.chassis.rpc.client import create_channel, domain_error_from_rpc
from emporium.chassis.rpc.identity import (
    Caller,
    acting_as,
    current_caller,
)
from emporium.chassis.rpc.server import create_server
from emporium.chassis.tracing import configure_tracing

SERVICE = "test.Echo"


def path(method: str) -> str:
    return f"/{SERVICE}/{method}"


class Order(BaseModel):
    quantity: int = Field(gt=0)


@dataclass
class EchoServicer:
    """Methods covering each behaviour under test; `calls` counts arrivals per method."""

    calls: Counter[str] = field(default_factory=Counter)
    healthy: bool = False
    channel: Any = None  # a chassis channel back to this server, for the relay method

    async def echo(self, request: bytes, context: Any) -> bytes:
        return request

    async def flaky(self, request: bytes, context: Any) -> bytes:
        self.calls["flaky"] += 1
        if self.calls["flaky"] <= 2:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
        return b"ok"

    async def down(self, request: bytes, context: Any) -> bytes:
        self.calls["down"] += 1
        if not self.healthy:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "down")
        return b"up"

    async def missing(self, request: bytes, context: Any) -> bytes:
        raise DomainError(
            "order 42 not found",
            ErrorCode.NOT_FOUND,
            "order_missing",
            [FieldError("id", "unknown")],
        )

    async def clash(self, request: bytes, context: Any) -> bytes:
        raise conflict("version mismatch", "stale_version")

    async def validate(self, request: bytes, context: Any) -> bytes:
        Order.model_validate_json(request)
        return b"valid"

    async def boom(self, request: bytes, context: Any) -> bytes:
        raise RuntimeError("db password is hunter2")

    async def whoami(self, request: bytes, context: Any) -> bytes:
        caller = current_caller()
        body = {
            "user_id": caller.user_id,
            "roles": sorted(caller.roles),
            "token": caller.token,
            "request_id": request_id_var.get(),
        }
        return json.dumps(body).encode()

    async def deadline(self, request: bytes, context: Any) -> bytes:
        return json.dumps(context.time_remaining()).encode()

    async def relay(self, request: bytes, context: Any) -> bytes:
        """Calls Deadline on this same server: the inner call must not outlive this one."""
        return await self.channel.unary_unary(path("Deadline"))(request)  # type: ignore[no-any-return]


METHODS = {
    "Echo": "echo", "Flaky": "flaky", "FlakyWrite": "flaky", "Down": "down",
    "Missing": "missing", "Clash": "clash", "Validate": "validate", "Boom": "boom",
    "WhoAmI": "whoami", "Deadline": "deadline", "Relay": "relay",
}  # fmt: skip


async def start_server(servicer: EchoServicer, **kwargs: Any) -> tuple[Any, str]:
    server = create_server("echo-server", **kwargs)
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(getattr(servicer, attr))
        for name, attr in METHODS.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
def servicer() -> EchoServicer:
    return EchoServicer()


@pytest.fixture
async def target(servicer: EchoServicer) -> AsyncIterator[str]:
    server, address = await start_server(servicer)
    yield address
    await server.stop(None)


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    configure_tracing("test").add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


async def call(channel: Any, method: str, request: bytes = b"x", **kwargs: Any) -> bytes:
    return await channel.unary_unary(path(method))(request, **kwargs)  # type: ignore[no-any-return]


# --- deadlines -----------------------------------------------------------------------------


async def test_default_deadline_is_applied_when_the_caller_gives_none(target: str) -> None:
    async with create_channel(target, default_timeout=1.5) as channel:
        remaining = json.loads(await call(channel, "Deadline"))
    assert remaining is not None  # no deadline at all would arrive as None
    assert 0 < remaining < 3  # grpc rounds the propagated timeout up slightly


async def test_explicit_timeout_wins_over_the_default(target: str) -> None:
    async with create_channel(target, default_timeout=30) as channel:
        remaining = json.loads(await call(channel, "Deadline", timeout=1.0))
    assert 0 < remaining < 2  # far from the 30 s default


async def test_outgoing_call_never_outlives_the_incoming_one(
    servicer: EchoServicer, target: str
) -> None:
    async with create_channel(target, default_timeout=30) as inner:
        servicer.channel = inner
        async with create_channel(target) as channel:
            remaining = json.loads(await call(channel, "Relay", timeout=0.8))
    assert 0 < remaining < 2  # capped by the incoming 0.8 s, not the inner 30 s default


# --- retries -------------------------------------------------------------------------------


async def test_idempotent_method_is_retried_until_it_succeeds(
    servicer: EchoServicer, target: str
) -> None:
    async with create_channel(target, idempotent={path("Flaky")}) as channel:
        assert await call(channel, "Flaky") == b"ok"
    assert servicer.calls["flaky"] == 3


async def test_idempotent_predicate_is_accepted(servicer: EchoServicer, target: str) -> None:
    async with create_channel(target, idempotent=lambda m: m.endswith("/Flaky")) as channel:
        assert await call(channel, "Flaky") == b"ok"
    assert servicer.calls["flaky"] == 3


async def test_non_idempotent_method_is_not_retried(servicer: EchoServicer, target: str) -> None:
    async with create_channel(target, idempotent={path("Flaky")}) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(channel, "FlakyWrite")
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert servicer.calls["flaky"] == 1


async def test_retries_stop_after_max_attempts(servicer: EchoServicer, target: str) -> None:
    async with create_channel(target, idempotent={path("Down")}, max_attempts=2) as channel:
        with pytest.raises(grpc.aio.AioRpcError):
            await call(channel, "Down")
    assert servicer.calls["down"] == 2


# --- circuit breaker -----------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_breaker_opens_fails_fast_and_recovers_through_one_probe(
    servicer: EchoServicer, target: str
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(target, failure_threshold=3, reset_timeout=10, clock=clock)
    async with create_channel(target, breaker=breaker) as channel:
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError):
                await call(channel, "Down")
        assert breaker.state is BreakerState.OPEN

        with pytest.raises(DomainError) as caught:
            await call(channel, "Down")
        assert caught.value.code is ErrorCode.UNAVAILABLE
        assert caught.value.reason == "circuit_open"
        assert servicer.calls["down"] == 3  # failed fast, never reached the server

        clock.now += 10
        assert breaker.state is BreakerState.HALF_OPEN
        with pytest.raises(grpc.aio.AioRpcError):
            await call(channel, "Down")  # the probe fails: open again
        assert servicer.calls["down"] == 4
        assert breaker.state is BreakerState.OPEN

        servicer.healthy = True
        clock.now += 10
        assert await call(channel, "Down") == b"up"
        assert breaker.state is BreakerState.CLOSED


async def test_client_errors_do_not_trip_the_breaker(target: str) -> None:
    breaker = CircuitBreaker(target, failure_threshold=2)
    async with create_channel(target, breaker=breaker) as channel:
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError):
                await call(channel, "Missing")
    assert breaker.state is BreakerState.CLOSED


def test_half_open_breaker_admits_a_single_probe() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("t", failure_threshold=1, reset_timeout=5, clock=clock)
    breaker.record(grpc.StatusCode.INTERNAL)
    clock.now += 5
    breaker.before_call()  # the probe
    with pytest.raises(DomainError):
        breaker.before_call()
    breaker.record(grpc.StatusCode.OK)
    breaker.before_call()
    assert breaker.state is BreakerState.CLOSED


def test_open_breaker_sets_the_circuit_gauge() -> None:
    target = f"gauge-{uuid.uuid4().hex}"
    breaker = CircuitBreaker(target, service="caller", failure_threshold=1)
    labels = {"service": "caller", "target": target}
    assert REGISTRY.get_sample_value("emporium_circuit_open", labels) == 0
    breaker.record(grpc.StatusCode.UNAVAILABLE)
    assert REGISTRY.get_sample_value("emporium_circuit_open", labels) == 1


# --- errors --------------------------------------------------------------------------------


async def test_domain_error_arrives_with_its_code_reason_and_fields(target: str) -> None:
    async with create_channel(target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(channel, "Missing")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    err = domain_error_from_rpc(caught.value)
    assert err.code is ErrorCode.NOT_FOUND
    assert err.message == "order 42 not found"
    assert err.reason == "order_missing"
    assert err.fields == [FieldError("id", "unknown")]


async def test_error_code_survives_a_lossy_status_mapping(target: str) -> None:
    async with create_channel(target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(channel, "Clash")
    assert caught.value.code() == grpc.StatusCode.ABORTED
    err = domain_error_from_rpc(caught.value)
    assert (err.code, err.reason) == (ErrorCode.CONFLICT, "stale_version")


async def test_validation_error_is_invalid_argument_with_fields(target: str) -> None:
    async with create_channel(target) as channel:
        assert await call(channel, "Validate", b'{"quantity": 2}') == b"valid"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(channel, "Validate", b'{"quantity": 0}')
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    err = domain_error_from_rpc(caught.value)
    assert err.code is ErrorCode.INVALID_ARGUMENT
    assert [f.field for f in err.fields] == ["quantity"]


async def test_unexpected_exception_is_internal_without_leaking(
    target: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="emporium.rpc.server"):
        async with create_channel(target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(channel, "Boom")
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "hunter2" not in (caught.value.details() or "")
    assert domain_error_from_rpc(caught.value).code is ErrorCode.INTERNAL
    logged = [r for r in caplog.records if r.exc_info]
    assert logged
    assert "hunter2" in str(logged[0].exc_info[1])  # type: ignore[index]


async def test_transport_failure_maps_to_unavailable() -> None:
    async with create_channel("127.0.0.1:1", default_timeout=1) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(channel, "Echo")
    err = domain_error_from_rpc(caught.value)
    assert err.code is ErrorCode.UNAVAILABLE
    assert err.reason == "unavailable"


async def test_a_channel_does_not_inherit_another_channels_connection_backoff() -> None:
    """A probe that found a backend still starting must not leave the next channel to that
    address failing fast while a shared connection sits in reconnect backoff."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with create_channel(f"127.0.0.1:{port}", default_timeout=0.5) as early:
        with pytest.raises(grpc.aio.AioRpcError):
            await call(early, "Echo")  # nothing listens yet: this connection backs off
        server = create_server("echo-server")
        handler = grpc.unary_unary_rpc_method_handler(EchoServicer().echo)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"Echo": handler}),)
        )
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        try:
            async with create_channel(f"127.0.0.1:{port}", default_timeout=2) as fresh:
                assert await call(fresh, "Echo", b"hi") == b"hi"
        finally:
            await server.stop(None)


# --- identity and request id ---------------------------------------------------------------


async def test_caller_and_request_id_propagate_from_the_client_context(target: str) -> None:
    alice = Caller("alice", frozenset({"customer"}), token="tok-1")
    token = request_id_var.set("req-123")
    try:
        with acting_as(alice):
            async with create_channel(target) as channel:
                seen = json.loads(await call(channel, "WhoAmI"))
    finally:
        request_id_var.reset(token)
    assert seen == {
        "user_id": "alice",
        "roles": ["customer"],
        "token": "tok-1",
        "request_id": "req-123",
    }


async def test_channel_caller_and_anonymous_calls(target: str) -> None:
    async with create_channel(target, caller=Caller.system("order")) as channel:
        seen = json.loads(await call(channel, "WhoAmI"))
    assert (seen["user_id"], seen["roles"]) == ("service:order", ["system"])
    async with create_channel(target) as channel:
        seen = json.loads(await call(channel, "WhoAmI"))
    assert seen["user_id"] == ""
    assert seen["request_id"]  # generated by the server when none was forwarded


class TableVerifier:
    """A verifier that knows one token; stands in for the JWKS verifier of issue #3."""

    async def verify(self, token: str) -> Caller:
        if token == "good":
            return Caller("verified-user", frozenset({"admin"}), token)
        raise unauthenticated("invalid token")


async def test_verifier_identity_wins_and_bad_tokens_are_rejected() -> None:
    server, address = await start_server(EchoServicer(), verifier=TableVerifier())
    try:
        async with create_channel(address) as channel:
            with acting_as(Caller("mallory", frozenset({"admin"}), token="good")):
                seen = json.loads(await call(channel, "WhoAmI"))
            assert seen["user_id"] == "verified-user"
            forged = Caller("mallory", frozenset({"admin"}), token="forged")
            with acting_as(forged), pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(channel, "WhoAmI")
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await server.stop(None)


# --- trace context and metrics -------------------------------------------------------------


async def test_trace_context_propagates_to_the_server_span(
    target: str, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    tracer = trace.get_tracer("test")
    async with create_channel(target) as channel:
        with tracer.start_as_current_span("checkout") as parent:
            await call(channel, "Echo")
    trace_id = parent.get_span_context().trace_id
    finished = [s for s in spans.get_finished_spans() if s.name == f"{SERVICE}/Echo"]
    server = next(s for s in finished if s.kind is SpanKind.SERVER)
    client = next(s for s in finished if s.kind is SpanKind.CLIENT)
    assert server.context.trace_id == client.context.trace_id == trace_id
    assert server.parent is not None
    assert server.parent.span_id == client.context.span_id


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_server_and_client_metrics_count_calls_by_code(target: str) -> None:
    service = f"caller-{uuid.uuid4().hex[:8]}"
    missing = f"{SERVICE}/Missing"
    before = sample("emporium_rpc_requests_total", service="echo-server", method=missing,
                    code="NOT_FOUND")  # fmt: skip
    async with create_channel(target, service=service) as channel:
        await call(channel, "Echo")
        with pytest.raises(grpc.aio.AioRpcError):
            await call(channel, "Missing")
    assert sample("emporium_rpc_client_requests_total", service=service,
                  method=f"{SERVICE}/Echo", code="OK") == 1  # fmt: skip
    assert sample("emporium_rpc_client_requests_total", service=service, method=missing,
                  code="NOT_FOUND") == 1  # fmt: skip
    after = sample("emporium_rpc_requests_total", service="echo-server", method=missing,
                   code="NOT_FOUND")  # fmt: skip
    assert after == before + 1
    assert sample("emporium_rpc_duration_seconds_count", service="echo-server", method=missing) > 0


async def test_status_set_by_the_servicer_itself_is_counted(target: str) -> None:
    method = f"{SERVICE}/FlakyWrite"
    labels = {"service": "echo-server", "method": method, "code": "UNAVAILABLE"}
    before = sample("emporium_rpc_requests_total", **labels)
    async with create_channel(target) as channel:
        with pytest.raises(grpc.aio.AioRpcError):
            await call(channel, "FlakyWrite")  # the servicer calls context.abort(UNAVAILABLE)
    assert sample("emporium_rpc_requests_total", **labels) == before + 1
