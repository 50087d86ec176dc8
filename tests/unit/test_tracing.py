"""Trace propagation helpers and the HTTP tracing/request-id middleware."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount

from emporium.chassis.logging import request_id_var
from emporium.chassis.tracing import (
    TracingMiddleware,
    configure_tracing,
    extract_headers,
    extract_metadata,
    inject_headers,
    inject_metadata,
)

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
REMOTE_TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    configure_tracing("test").add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def test_configure_tracing_is_idempotent() -> None:
    provider = configure_tracing("order")
    assert isinstance(provider, TracerProvider)
    assert configure_tracing("order") is provider
    assert trace.get_tracer_provider() is provider
    assert str(provider.resource.attributes["service.name"]).startswith("emporium-")


def test_event_headers_round_trip_the_trace_context() -> None:
    tracer = TracerProvider().get_tracer("test")
    headers: dict[str, str] = {"ce_id": "e-1"}
    with tracer.start_as_current_span("publish") as span:
        inject_headers(headers)
    assert headers["traceparent"].startswith("00-")
    restored = trace.get_current_span(extract_headers(headers)).get_span_context()
    assert restored.trace_id == span.get_span_context().trace_id
    assert restored.is_remote


def test_grpc_metadata_round_trip_the_trace_context() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("call") as span:
        metadata = inject_metadata()
    assert [k for k, _ in metadata] == ["traceparent"]
    restored = trace.get_current_span(extract_metadata([*metadata, ("x-bin", b"\0")]))
    assert restored.get_span_context().span_id == span.get_span_context().span_id


def test_without_a_span_nothing_is_injected() -> None:
    assert inject_metadata() == []
    assert not trace.get_current_span(extract_metadata(None)).get_span_context().is_valid


def api() -> Any:
    """Like the runtime: a FastAPI app mounted at / under a Starlette app, in the middleware."""
    inner = FastAPI()

    @inner.get("/api/v1/orders/{order_id}")
    async def get_order(order_id: str, request: Request) -> JSONResponse:
        return JSONResponse({"order_id": order_id, "request_id": request_id_var.get()})

    return TracingMiddleware(Starlette(routes=[Mount("/", inner)]), "api-gateway")


async def get(path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=api())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers)


async def test_generates_and_echoes_a_request_id() -> None:
    response = await get("/api/v1/orders/o-1")
    request_id = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert response.json()["request_id"] == request_id


async def test_forwarded_request_id_is_kept_and_junk_is_replaced() -> None:
    response = await get("/api/v1/orders/o-1", {"X-Request-Id": "edge-42"})
    assert response.headers["x-request-id"] == "edge-42"
    assert response.json()["request_id"] == "edge-42"
    response = await get("/api/v1/orders/o-1", {"X-Request-Id": "bad id\twith spaces"})
    assert response.headers["x-request-id"] != "bad id\twith spaces"
    assert request_id_var.get() is None  # reset after the request


async def test_server_span_continues_the_callers_trace(spans: InMemorySpanExporter) -> None:
    spans.clear()
    await get("/api/v1/orders/o-9", {"traceparent": TRACEPARENT})
    [span] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert span.name == "GET /api/v1/orders/{order_id}"
    assert span.context.trace_id == REMOTE_TRACE_ID
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 200


async def test_unmatched_route_span_name(spans: InMemorySpanExporter) -> None:
    spans.clear()
    response = await get("/nowhere/123")
    assert response.status_code == 404
    [span] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert span.name == "GET unmatched"
