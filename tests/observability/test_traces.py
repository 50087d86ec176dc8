"""One order, one trace: a real OpenTelemetry Collector (Emporium's build, file exporter)
receives the spans of the platform started as `make up` does (embedded profile, OTLP to the
collector through `OTEL_EXPORTER_OTLP_ENDPOINT`); a shopper places an order through the public
REST API, and the trace that request started must hold the spans of every service the order
went through, over gRPC (gateway -> order -> product/inventory/payment) and over the bus
(`order.created`, `order.completed` and their consumers), each span's parent in the trace.

A broken propagation on any hop (a gRPC client that sends no `traceparent`, an outbox row
without it, a consumer that starts a new trace) splits the trace and fails here."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.platform import GATEWAY, running_platform, wait_healthy
from tests.observability.otelcol import Collector, Span, running_collector, wait_for
from tests.observability.tools import demo_products, place_order, signed_up

pytestmark = [pytest.mark.e2e, pytest.mark.waits_for_build, pytest.mark.timeout(1800)]

ADMIN_PASSWORD = "traces-admin-password-1"
SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # OTLP span kinds
# The services one order goes through: the gateway, the synchronous steps of the checkout
# saga, and the consumers of `order.created` (inventory, notification, analytics,
# recommendation) and `order.completed` (order, notification, analytics, recommendation).
ORDER_SERVICES = {
    "api_gateway",
    "order",
    "product",
    "inventory",
    "payment",
    "notification",
    "analytics",
    "recommendation",
}
CONSUMED = {
    "order.created": {"inventory", "notification", "analytics", "recommendation"},
    "order.completed": {"order", "notification", "analytics", "recommendation"},
}


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Collector, str]]:
    """The collector and the request id of one order placed on a platform sending to it."""
    tmp = tmp_path_factory.mktemp("traces")
    with running_collector(tmp / "otelcol") as running:
        env = {
            "EMPORIUM_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "EMPORIUM_GATEWAY_RATE_LIMIT": "1000",
            "OTEL_EXPORTER_OTLP_ENDPOINT": running.otlp_grpc,
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_BSP_SCHEDULE_DELAY": "200",  # ms: spans leave quickly
        }
        with running_platform(tmp, env, demo=True) as platform:
            try:
                wait_healthy()
                yield running, order_of_a_new_shopper()
            except BaseException:
                print(platform.log()[-20000:])
                print(running.log.read_text(errors="replace")[-5000:])
                raise


def order_of_a_new_shopper() -> str:
    """Sign up and buy one demo product with a card that pays; the order's request id."""
    client = httpx.Client(base_url=GATEWAY, timeout=20.0)
    products = demo_products(client)
    auth = signed_up(client, "trace")
    request_id = f"trace-test-{uuid.uuid4().hex}"
    # The gateway's SERVER span of this request carries the id (emporium.request_id).
    with httpx.Client(
        base_url=GATEWAY, timeout=20.0, headers={"X-Request-Id": request_id}
    ) as tagged:
        order = place_order(tagged, auth, products[0]["id"])
    assert order.status_code in (201, 202), order.text
    order_id = order.json()["id"]
    status = "PENDING"
    for _ in range(150):
        status = client.get(f"/api/v1/orders/{order_id}", headers=auth).json()["status"]
        if status not in ("PENDING", "PLACED"):
            break
        time.sleep(0.2)
    assert status == "PAID", status
    return request_id


def service_of(span: Span) -> str:
    return span.service.removeprefix("emporium-")


def order_trace(collector: Collector, request_id: str) -> list[Span]:
    """The spans of the trace the order's request started (the gateway's SERVER span of
    `POST /api/v1/orders` carries the request id)."""
    spans = collector.spans()
    roots = [
        s
        for s in spans
        if s.kind == SERVER and s.attributes.get("emporium.request_id") == request_id
        if service_of(s) == "api_gateway"
    ]
    if not roots:
        return []
    assert len(roots) == 1, roots
    return [s for s in spans if s.trace_id == roots[0].trace_id]


def complete_trace(collector: Collector, request_id: str) -> list[Span]:
    """The order's trace once every expected service and consumer is in it ([] until)."""
    spans = order_trace(collector, request_id)
    consumed = {
        (s.attributes.get("messaging.destination.name"), service_of(s))
        for s in spans
        if s.kind == CONSUMER
    }
    wanted = {(topic, svc) for topic, services in CONSUMED.items() for svc in services}
    if {service_of(s) for s in spans} >= ORDER_SERVICES and wanted <= consumed:
        return spans
    return []


@pytest.fixture(scope="module")
def trace(collector: tuple[Collector, str]) -> list[Span]:
    """The order's complete trace (every service and consumer in it); fails, naming what the
    trace holds, when it never completes."""
    running, request_id = collector
    spans: list[Span] = wait_for(lambda: complete_trace(running, request_id), timeout=60)
    if not spans:
        partial = order_trace(running, request_id)
        pytest.fail(
            f"the order's trace never held every service: it has "
            f"{sorted({service_of(s) for s in partial})} in {len(partial)} spans, want "
            f"{sorted(ORDER_SERVICES)} and the consumers {CONSUMED}; "
            f"traces seen in all: {len({s.trace_id for s in running.spans()})}"
        )
    return spans


def tree(trace: list[Span]) -> str:
    """The trace as an indented tree, `service: name`, children under their parent."""
    children: dict[str, list[Span]] = {}
    for span in trace:
        children.setdefault(span.parent_id, []).append(span)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for span in children.get(parent, []):
            lines.append(f"{'  ' * depth}{service_of(span)}: {span.name}")
            walk(span.span_id, depth + 1)

    walk("", 0)
    return "\n".join(lines)


def test_one_trace_holds_every_service_of_an_order(trace: list[Span]) -> None:
    services = {service_of(s) for s in trace}
    assert services >= ORDER_SERVICES
    print(f"the order's trace: {len(trace)} spans of {len(services)} services: {sorted(services)}")
    print(tree(trace))


def test_every_span_of_the_order_has_its_parent_in_the_trace(trace: list[Span]) -> None:
    ids = {s.span_id for s in trace}
    roots = [s for s in trace if not s.parent_id]
    assert [(service_of(r), r.name) for r in roots] == [("api_gateway", "POST /api/v1/orders")]
    orphans = [(service_of(s), s.name) for s in trace if s.parent_id and s.parent_id not in ids]
    assert not orphans, f"spans whose parent is not in the trace: {orphans}"


def test_grpc_hops_are_client_server_pairs(trace: list[Span]) -> None:
    """Each gRPC server span of the order is the child of a client span in another service."""
    by_id = {s.span_id: s for s in trace}
    servers = [s for s in trace if s.kind == SERVER and s.attributes.get("rpc.system") == "grpc"]
    called = {service_of(s) for s in servers}
    assert {"order", "product", "inventory", "payment"} <= called, called
    for server in servers:
        parent = by_id[server.parent_id]
        assert parent.kind == CLIENT, (server.name, parent.name)
        assert service_of(parent) != service_of(server), server.name
        assert parent.name == server.name, (parent.name, server.name)


def test_consumer_spans_continue_the_span_that_produced_the_event(trace: list[Span]) -> None:
    """`order.created` is written by the order service, `order.completed` by payment: each
    consumer's span is a child of a span of the producing service."""
    by_id = {s.span_id: s for s in trace}
    producer = {"order.created": "order", "order.completed": "payment"}
    seen = set()
    for span in trace:
        topic = span.attributes.get("messaging.destination.name")
        if span.kind != CONSUMER or topic not in producer:
            continue
        parent = by_id[span.parent_id]
        assert service_of(parent) == producer[topic], (topic, service_of(span), parent.name)
        seen.add((topic, service_of(span)))
    assert seen >= {(t, s) for t, services in CONSUMED.items() for s in services}
