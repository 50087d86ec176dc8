"""Trace context in event headers: the producer's span travels with the event (outbox headers
column -> `traceparent`/`tracestate` message headers) and the consumer's span continues it."""

from __future__ import annotations

import functools

from opentelemetry import trace

from emporium.chassis.tracing import extract_headers, inject_headers

TRACER_NAME = "emporium.events"


def current_trace_headers() -> dict[str, str]:
    """traceparent/tracestate of the current span (empty when nothing is traced)."""
    carrier: dict[str, str] = {}
    inject_headers(carrier)
    return carrier


@functools.cache
def tracer() -> trace.Tracer:
    """One tracer per process (`get_tracer` builds a new one per call; a proxy obtained before
    `configure_tracing` follows the provider set later)."""
    return trace.get_tracer(TRACER_NAME)


__all__ = ["current_trace_headers", "extract_headers", "tracer"]
