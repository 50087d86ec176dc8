"""Wiring of the gateway: the FastAPI app, its routers, middleware and error handlers.

`create_api(targets)` builds the app without opening anything: the gRPC channels to the
backends are created on first use (`backends.Backends`) and closed by `build`'s `on_stop`.
The runtime wraps the app in `TracingMiddleware` (X-Request-Id on every response, one span
per request) and the HTTP metrics middleware.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from emporium.chassis.catalog import BACKENDS
from emporium.chassis.config import ServiceSettings, grpc_target
from emporium.chassis.rpc.health import HealthProber
from emporium.chassis.runtime import ServiceApp
from emporium.services.api_gateway import (
    analytics,
    auth,
    health,
    inventory,
    notifications,
    orders,
    problems,
    products,
    recommendations,
    search,
    users,
)
from emporium.services.api_gateway.backends import Backends
from emporium.services.api_gateway.bodylimit import BodySizeLimitMiddleware
from emporium.services.api_gateway.forwarded import ForwardedClientMiddleware, TrustedProxies
from emporium.services.api_gateway.ratelimit import (
    ClientRateLimitMiddleware,
    RateLimits,
    TokenBucketLimiter,
)
from emporium.services.api_gateway.web.app import WebFirst, create_web

ROUTERS = (
    health.router,
    auth.router,
    users.router,
    products.router,
    search.router,
    inventory.router,
    orders.router,
    notifications.router,
    recommendations.router,
    analytics.router,
)


def create_api(
    targets: dict[str, str],
    limits: RateLimits | None = None,
    trusted_proxies: TrustedProxies | None = None,
) -> FastAPI:
    """The gateway app for backends at `targets` (backend name -> `host:port`); forwarded
    headers are believed only from `trusted_proxies` (default: nobody, see `forwarded`)."""
    limits = limits or RateLimits()
    api = FastAPI(
        title="Emporium API",
        version="1.0.0",
        description="The public REST contract of Emporium (API.md).",
    )
    api.state.targets = targets
    api.state.prober = HealthProber()
    api.state.backends = Backends(targets)
    api.state.login_limiter = TokenBucketLimiter(limits.login_rate, limits.login_burst)
    api.state.login_address_limiter = TokenBucketLimiter(
        limits.login_address_rate, limits.login_address_burst
    )
    problems.install(api)
    for router in ROUTERS:
        api.include_router(router)
    # Added last = outermost: cheap refusals happen before any parsing.
    api.add_middleware(BodySizeLimitMiddleware)
    api.add_middleware(
        ClientRateLimitMiddleware,
        limiter=TokenBucketLimiter(limits.client_rate, limits.client_burst),
    )
    # Outermost: everything inside sees the client address, not a trusted proxy's.
    api.add_middleware(ForwardedClientMiddleware, trusted=trusted_proxies or TrustedProxies())
    install_openapi(api)
    return api


async def close_api(api: FastAPI) -> None:
    await api.state.backends.close()
    await api.state.prober.close()


def install_openapi(api: FastAPI) -> None:
    """FastAPI's document, adjusted to what the gateway really answers: invalid input is a
    400 problem (not FastAPI's default 422 schema) and every error is problem+json."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema:
            return api.openapi_schema
        schema = get_openapi(
            title=api.title,
            version=api.version,
            openapi_version=api.openapi_version,
            description=api.description,
            routes=api.routes,
        )
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                _problem_responses(operation.get("responses", {}))
                _response_headers(operation.get("responses", {}))
        schemas = schema.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        _exact_bounds(schema)
        api.openapi_schema = schema
        return schema

    api.openapi = openapi  # type: ignore[method-assign]


PROBLEM_REF = "#/components/schemas/Problem"
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _problem_responses(responses: dict[str, Any]) -> None:
    """Error answers are problem+json, except those documented with another model (the
    health routes' 503 is their usual body)."""
    responses.pop("422", None)
    for status, response in responses.items():
        content = response.get("content", {})
        body = content.get("application/json", {})
        is_problem = body.get("schema", {}).get("$ref") == PROBLEM_REF
        if status.isdigit() and int(status) >= 400 and is_problem:
            content[problems.PROBLEM] = content.pop("application/json")


# Headers every answer carries (the runtime's TracingMiddleware), and those of some statuses.
REQUEST_ID_HEADER = {
    "description": "The request id: the client's `X-Request-Id` echoed, else a new one",
    "schema": {"type": "string", "minLength": 1},
    "required": True,
}
STATUS_HEADERS = {
    "401": {
        "WWW-Authenticate": {
            "description": '`Bearer realm="emporium"`',
            "schema": {"type": "string", "minLength": 1},
            "required": True,
        }
    },
    "429": {
        "Retry-After": {
            "description": "Seconds to wait before retrying",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
            "required": True,
        }
    },
}


def _response_headers(responses: dict[str, Any]) -> None:
    for status, response in responses.items():
        headers = response.setdefault("headers", {})
        headers["X-Request-Id"] = dict(REQUEST_ID_HEADER)
        headers.update({k: dict(v) for k, v in STATUS_HEADERS.get(status, {}).items()})


def _exact_bounds(node: Any) -> None:
    """FastAPI's OpenAPI model stores `minimum`/`maximum` as floats (`100.0`); write whole
    numbers back as integers, so an integer schema's bounds read as integers."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _BOUNDS and isinstance(value, float) and value.is_integer():
                node[key] = int(value)
            else:
                _exact_bounds(value)
    elif isinstance(node, list):
        for item in node:
            _exact_bounds(item)


async def build(settings: ServiceSettings) -> ServiceApp:
    targets = {b.name: grpc_target(b.name) for b in BACKENDS}
    api = create_api(targets, RateLimits.from_env(os.environ), TrustedProxies.from_env(os.environ))
    # The storefront calls this very process's public API over loopback (docs/web.md).
    web = create_web(f"http://{loopback(settings.host)}:{settings.http_port}")

    async def close() -> None:
        await web.state.close()
        await close_api(api)

    return ServiceApp(
        name=settings.name, settings=settings, http_app=WebFirst(api, web), on_stop=[close]
    )


def loopback(host: str) -> str:
    """Where this process's own HTTP port is reached from inside it."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
