"""HTTP RED metrics are labelled by route template (bounded cardinality), also for FastAPI
routes mounted under Starlette, and the exposition renders every fixed metric name."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from emporium.chassis.metrics import HttpMetricsMiddleware, render_metrics


def app(service: str) -> Any:
    router = APIRouter(prefix="/api/v1")

    @router.get("/products/{product_id}")
    async def product(product_id: str) -> dict[str, str]:
        return {"id": product_id}

    inner = FastAPI()
    inner.include_router(router)

    async def ping(_: Any) -> PlainTextResponse:
        return PlainTextResponse("pong")

    admin = Starlette(routes=[Route("/jobs/{job}", ping)])
    routes = [Route("/metrics", ping), Mount("/admin", admin), Mount("/", inner)]
    return HttpMetricsMiddleware(Starlette(routes=routes), service)


def requests_total(service: str, route: str, status: str) -> float:
    labels = {"service": service, "method": "GET", "route": route, "status": status}
    return REGISTRY.get_sample_value("emporium_http_requests_total", labels) or 0.0


async def test_requests_are_labelled_by_route_template() -> None:
    service = f"svc-{uuid.uuid4().hex[:8]}"
    transport = httpx.ASGITransport(app=app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for product_id in ("p-1", "p-2"):
            assert (await client.get(f"/api/v1/products/{product_id}")).status_code == 200
        assert (await client.get("/admin/jobs/7")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
        assert (await client.get("/api/v1/missing/1")).status_code == 404
        assert (await client.get("/admin/unknown")).status_code == 404

    assert requests_total(service, "/api/v1/products/{product_id}", "200") == 2
    assert requests_total(service, "/admin/jobs/{job}", "200") == 1
    assert requests_total(service, "/metrics", "200") == 1
    assert requests_total(service, "unmatched", "404") == 2
    labels = {"service": service, "method": "GET", "route": "/api/v1/products/{product_id}"}
    assert REGISTRY.get_sample_value("emporium_http_request_duration_seconds_count", labels) == 2


def test_exposition_names_every_fixed_metric() -> None:
    payload, content_type = render_metrics()
    text = payload.decode()
    assert content_type.startswith("text/plain")
    for name in (
        "emporium_rpc_requests_total", "emporium_rpc_duration_seconds",
        "emporium_rpc_client_requests_total", "emporium_http_requests_total",
        "emporium_http_request_duration_seconds", "emporium_outbox_backlog",
        "emporium_outbox_published_total", "emporium_consumer_lag",
        "emporium_events_consumed_total", "emporium_circuit_open",
    ):  # fmt: skip
        assert f"# HELP {name}" in text
