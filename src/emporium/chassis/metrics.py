"""The Prometheus metrics every service exposes on `/metrics`.

One registry per process (the default one) and one set of metric names for every service, so
a single Grafana dashboard and one alert rule per signal cover all twelve services: the
`service` label tells them apart. RED metrics for every gRPC method and HTTP route, plus the
event plumbing's two health signals: outbox backlog (rows not yet published) and consumer lag
(records not yet processed).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

# Buckets sized for the SLO table: 200 ms gateway, 300 ms search, 500 ms order, 1 s payment.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)

RPC_REQUESTS = Counter(
    "emporium_rpc_requests_total",
    "gRPC calls handled, by method and status code.",
    ["service", "method", "code"],
)
RPC_LATENCY = Histogram(
    "emporium_rpc_duration_seconds",
    "gRPC server-side handling time.",
    ["service", "method"],
    buckets=LATENCY_BUCKETS,
)
RPC_CLIENT_REQUESTS = Counter(
    "emporium_rpc_client_requests_total",
    "Outgoing gRPC calls, by target method and status code.",
    ["service", "method", "code"],
)
HTTP_REQUESTS = Counter(
    "emporium_http_requests_total",
    "HTTP requests handled, by route template and status.",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "emporium_http_request_duration_seconds",
    "HTTP request handling time.",
    ["service", "method", "route"],
    buckets=LATENCY_BUCKETS,
)
DB_COMMITS = Counter(
    "emporium_db_commits_total",
    "Relational transactions committed (what a request costs in durable writes).",
    ["service"],
)
OUTBOX_BACKLOG = Gauge(
    "emporium_outbox_backlog",
    "Outbox rows written but not yet acknowledged by the broker.",
    ["service"],
)
OUTBOX_PUBLISHED = Counter(
    "emporium_outbox_published_total",
    "Outbox rows published and marked sent.",
    ["service", "topic"],
)
EVENTS_PRUNED = Counter(
    "emporium_events_pruned_total",
    "Published outbox rows and old inbox rows deleted by the housekeeping task.",
    ["service", "table"],
)
CONSUMER_LAG = Gauge(
    "emporium_consumer_lag",
    "Records in the topic not yet processed by the consumer group.",
    ["service", "group", "topic"],
)
EVENTS_CONSUMED = Counter(
    "emporium_events_consumed_total",
    "Events handled by a consumer, by outcome (processed, duplicate, retried, dead_lettered).",
    ["service", "group", "topic", "outcome"],
)
CIRCUIT_STATE = Gauge(
    "emporium_circuit_open",
    "1 while the client-side circuit breaker to a target is open.",
    ["service", "target"],
)

DB_POOL_IN_USE = Gauge(
    "emporium_db_pool_connections_in_use",
    "Relational connections checked out of the pool (SQLite: open sessions).",
    ["service"],
)
DB_POOL_SIZE = Gauge(
    "emporium_db_pool_size",
    "Connections the pool keeps (its size; overflow connections come on top).",
    ["service"],
)
EVENT_LOOP_LAG = Histogram(
    "emporium_event_loop_lag_seconds",
    "How late the event loop ran a timer: time spent in blocking code instead of serving.",
    ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


def render_metrics() -> tuple[bytes, str]:
    """The text exposition of the default registry and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST


def route_template(scope: dict[str, Any]) -> str:
    """The matched route's template (`/api/v1/orders/{id}`), never the raw path, so label
    cardinality stays bounded; unmatched requests share one label.

    Starlette and FastAPI routers record the innermost matched route in `scope["route"]` and
    each `Mount` on the way adds its prefix to `root_path`, so the full template is
    `root_path + route.path_format`. When the innermost match is a `Mount` itself (nothing
    inside it matched), the request counts as unmatched.
    """
    route = scope.get("route")
    if route is None or hasattr(route, "routes"):  # a Mount/Host: nothing inside matched
        return "unmatched"
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not path:
        return "unmatched"
    root_path = str(scope.get("root_path", "") or "")
    app_root = str(scope.get("app_root_path", "") or "")
    if app_root and root_path.startswith(app_root):  # a proxy prefix is not part of the route
        root_path = root_path[len(app_root) :]
    return f"{root_path}{path}"


class HttpMetricsMiddleware:
    """Pure ASGI middleware counting requests and timing them per route template."""

    def __init__(self, app: Any, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}
        started = time.perf_counter()

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = route_template(scope)
            method = scope.get("method", "GET")
            HTTP_REQUESTS.labels(self.service, method, route, str(status["code"])).inc()
            HTTP_LATENCY.labels(self.service, method, route).observe(time.perf_counter() - started)
