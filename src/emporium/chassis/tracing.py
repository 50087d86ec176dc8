"""OpenTelemetry tracing: one provider per process, W3C propagation, and the HTTP middleware.

A trace follows a request from the gateway through gRPC calls (trace context in gRPC
metadata) and through Kafka (trace context in event headers, stored in the outbox row so the
relay publishes it with the event). Spans go to an OTLP collector (Jaeger) only when
`OTEL_EXPORTER_OTLP_ENDPOINT` is set, to stdout with `OTEL_TRACES_EXPORTER=console`, and
nowhere otherwise; even then a real provider is installed so every log line carries trace and
span ids that correlate the services' logs.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from emporium.chassis.logging import request_id_var
from emporium.chassis.metrics import route_template

# One line per HTTP request (the access log), written inside the request's span so it carries
# its trace id: what an operator greps, or searches in the log store, to follow one request.
# At DEBUG (EMPORIUM_LOG_LEVEL=DEBUG) like the per-RPC and per-event lines: at the rates the
# platform is built for, a line per request is a cost the metrics already cover.
access_log = logging.getLogger("emporium.access")
# Probes and scrapes, every few seconds on every process: counted in the metrics, not logged.
QUIET_ROUTES = frozenset({"/metrics", "/healthz", "/livez"})

REQUEST_ID_HEADER = "x-request-id"
# A forwarded request id is echoed into logs and headers: accept only short, plain tokens.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def configure_tracing(service: str) -> TracerProvider:
    """Install the process's tracer provider (resource `service.name=emporium-<service>`).

    Idempotent: when an SDK provider is already installed (a second call, or a test that set
    its own), that provider is returned unchanged, because OpenTelemetry allows setting the
    global provider only once per process.
    """
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = TracerProvider(resource=Resource.create({"service.name": f"emporium-{service}"}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def new_request_id(candidate: str | None = None) -> str:
    """`candidate` when it is a sane forwarded id, else a fresh uuid4 hex."""
    if candidate and _REQUEST_ID.match(candidate):
        return candidate
    return uuid.uuid4().hex


# --- gRPC metadata -------------------------------------------------------------------------


def inject_metadata(context: Context | None = None) -> list[tuple[str, str]]:
    """traceparent/tracestate of the current (or given) context as gRPC metadata pairs."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return list(carrier.items())


def extract_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> Context:
    """The remote trace context carried in gRPC metadata (empty context when absent)."""
    carrier: dict[str, str] = {}
    for key, value in metadata or ():
        if isinstance(value, str):
            carrier[key.lower()] = value
    return propagate.extract(carrier)


# --- event headers -------------------------------------------------------------------------


def inject_headers(headers: dict[str, str], context: Context | None = None) -> None:
    """Add traceparent/tracestate of the current (or given) context to event headers."""
    propagate.inject(headers, context=context)


def extract_headers(headers: Mapping[str, str]) -> Context:
    """The trace context an event was published under (empty context when absent)."""
    return propagate.extract({k.lower(): v for k, v in headers.items()})


# --- HTTP ----------------------------------------------------------------------------------


class TracingMiddleware:
    """Pure ASGI middleware: one SERVER span per HTTP request (named `<METHOD> <route
    template>`, continuing the caller's trace from `traceparent`), and the request id:
    taken from `X-Request-Id` (or generated), set for the logs, echoed on the response."""

    def __init__(self, app: Any, service: str) -> None:
        self.app = app
        self.service = service
        # Once, not per request: `get_tracer` builds a Tracer and its scope on every call
        # (a proxy before `configure_tracing`, which follows the provider set later).
        self.tracer = trace.get_tracer("emporium.chassis.http")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())
        }
        request_id = new_request_id(headers.get(REQUEST_ID_HEADER))
        method = str(scope.get("method", "GET"))
        status = {"code": 500}

        async def send_with_request_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
                response_headers = list(message.get("headers", ()))
                if not any(k.lower() == b"x-request-id" for k, _ in response_headers):
                    response_headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": response_headers}
            await send(message)

        # FastAPI >= 0.16x opens its own SERVER span per request; this span is the one, so
        # mark the request as FastAPI's own `exclude` option does (key present, value None).
        scope.setdefault("fastapi.telemetry", None)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            with self.tracer.start_as_current_span(
                method,
                context=extract_headers(headers),
                kind=SpanKind.SERVER,
                attributes={
                    "http.request.method": method,
                    "url.path": str(scope.get("path", "")),
                    "emporium.request_id": request_id,
                },
            ) as span:
                try:
                    await self.app(scope, receive, send_with_request_id)
                finally:
                    route = route_template(scope)
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                    span.set_attribute("http.response.status_code", status["code"])
                    if status["code"] >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                    if route not in QUIET_ROUTES and access_log.isEnabledFor(logging.DEBUG):
                        access_log.debug(
                            "%s %s %s",
                            method,
                            route,
                            status["code"],
                            extra={
                                "http_method": method,
                                "http_route": route,
                                "http_status": status["code"],
                                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                            },
                        )
        finally:
            request_id_var.reset(token)
