"""JSON log lines on stdout, one object per record, correlated with requests and traces.

Every service logs the same shape, so one log pipeline (Loki, Elasticsearch, `jq`) can follow
a request across processes: `request_id` comes from the `X-Request-Id` header or the
`x-request-id` gRPC metadata (set by the tracing middleware and the gRPC server interceptor),
`trace_id`/`span_id` from the current OpenTelemetry span, and anything passed as `extra=`
becomes a top-level key. A dozen lines of formatter instead of a dependency.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace

# The id of the request being handled, set per HTTP request / gRPC call by the chassis.
request_id_var: ContextVar[str | None] = ContextVar("emporium_request_id", default=None)

# LogRecord attributes that are plumbing, not `extra=` fields.
_RESERVED = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


def trace_ids() -> tuple[str, str]:
    """The current span's (trace_id, span_id) in hex, or two empty strings without a span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return "", ""
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line (newlines inside values are escaped)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        trace_id, span_id = trace_ids()
        if trace_id:
            entry["trace_id"] = trace_id
            entry["span_id"] = span_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _RESERVED and key not in entry:
                entry[key] = value
        return json.dumps(entry, default=str, ensure_ascii=False)


class _StdoutHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stdout` is at emit time (so redirection and test capture work
    even when logging was configured earlier)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route every logger's records to stdout as JSON lines tagged with `service`.

    Idempotent: a second call replaces the handler installed by the first (so the service
    name or level can change) instead of adding another one.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StdoutHandler):
            root.removeHandler(handler)
    handler = _StdoutHandler()
    handler.setFormatter(JsonFormatter(service))
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)
