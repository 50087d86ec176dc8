"""One trace from the edge to the consumers: an HTTP request enters through the tracing
middleware, calls a backend over gRPC (W3C context in metadata), the backend stages an event in
its outbox (context in the row's headers), the relay publishes it (context in the CloudEvents
headers) and a consumer handles it; every span of that chain carries the request's trace id."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from emporium.chassis.bus.factory import open_bus
from emporium.chassis.db import Database
from emporium.chassis.events.consumer import EventConsumer
from emporium.chassis.events.envelope import Event
from emporium.chassis.events.outbox import add_event
from emporium.chassis.events.relay import OutboxRelay
from emporium.chassis.rpc.client import create_channel
from emporium.chassis.rpc.server import create_server
from emporium.chassis.tracing import TracingMiddleware, configure_tracing
from tests.events_support import fresh_database, unique

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
EDGE_TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    configure_tracing("test").add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


async def start_backend(database: Database, topic: str) -> tuple[grpc.aio.Server, str]:
    """A backend whose one method records an event through the outbox."""

    async def place(request: bytes, context: Any) -> bytes:
        async with database.unit_of_work() as uow:
            await add_event(
                uow,
                topic,
                Event(
                    source="order",
                    type="com.emporium.test.v1",
                    subject="o-1",
                    data={"order_id": request.decode()},
                ),
            )
            await uow.commit()
        return b"placed"

    server = create_server("order")
    handler = grpc.unary_unary_rpc_method_handler(place)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("test.Orders", {"Place": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def test_one_trace_spans_gateway_backend_relay_and_consumer(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    spans.clear()
    topic = unique("trace")
    bus = open_bus(f"embedded:///{tmp_path}/bus.sqlite3", client_id="test")
    await bus.start()
    handled: list[Event] = []

    async def handler(_: Any, event: Event) -> None:
        handled.append(event)

    async with fresh_database("sqlite", tmp_path) as database:
        server, target = await start_backend(database, topic)
        channel = create_channel(target, service="api_gateway")

        async def gateway_route(_: Request) -> JSONResponse:
            reply = await channel.unary_unary("/test.Orders/Place")(b"o-1")
            return JSONResponse({"reply": reply.decode()})

        edge = TracingMiddleware(Starlette(routes=[Route("/orders", gateway_route)]), "gateway")
        transport = httpx.ASGITransport(app=edge)
        async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
            response = await client.get("/orders", headers={"traceparent": TRACEPARENT})
        assert response.json() == {"reply": "placed"}

        assert await OutboxRelay(database, bus, "order").relay_once() == 1
        consumer = EventConsumer(None, bus, "notification", unique("group"), [topic], handler)
        await consumer.start()
        for _ in range(40):
            if handled:
                break
            await consumer.poll_once()
        await consumer.close()
        await channel.close()
        await server.stop(None)
    await bus.close()

    assert len(handled) == 1
    assert int(handled[0].traceparent.split("-")[1], 16) == EDGE_TRACE_ID  # type: ignore[union-attr]
    kinds = {
        span.kind for span in spans.get_finished_spans() if span.context.trace_id == EDGE_TRACE_ID
    }
    assert {SpanKind.SERVER, SpanKind.CLIENT, SpanKind.CONSUMER} <= kinds
    server_spans = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert all(s.context.trace_id == EDGE_TRACE_ID for s in server_spans)
