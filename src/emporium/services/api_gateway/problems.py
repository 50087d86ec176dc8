"""RFC 9457 problem+json for every error the gateway returns.

Backends raise `DomainError`; it arrives here as a gRPC status plus the `emporium-error-bin`
trailer, is rebuilt by `domain_error_from_rpc` and rendered once, in one place, as
problem+json, with the status `DomainError.http_status` gives (so a 4xx cause is never a
500, and an unreachable backend or an open circuit is 503).

One choice for invalid input, wherever it is caught: **400** with `errors: [{field,
message}]`. Request validation at the edge (pydantic, FastAPI's `RequestValidationError`)
uses the same status and shape as a backend's `INVALID_ARGUMENT`, so clients handle one
case. `field` is the dotted path inside the JSON body (`items.0.quantity`), or the query
parameter or header name (`limit`, `Idempotency-Key`).
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Sequence
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from emporium.chassis.errors import DomainError, ErrorCode

log = logging.getLogger("emporium.gateway")
PROBLEM = "application/problem+json"
TYPE_BASE = "https://emporium.dev/problems/"
# When a backend (auth's failed-login throttle) says RESOURCE_EXHAUSTED without a hint.
DEFAULT_RETRY_AFTER_SECONDS = 30
_LOCATIONS = {"body", "query", "path", "header", "cookie"}


class TooManyRequests(Exception):
    """Raised by a route's own limiter (login); rendered as 429 with `Retry-After`."""

    def __init__(self, retry_after: float, detail: str = "too many attempts; retry later") -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.detail = detail


def problem(
    status: int,
    title: str,
    detail: str = "",
    *,
    type_: str = "about:blank",
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def retry_after_header(wait: float) -> dict[str, str]:
    """`Retry-After` in whole seconds (at least 1)."""
    return {"Retry-After": str(max(1, math.ceil(wait)))}


def _headers_for(status: int, retry_after: float | None = None) -> dict[str, str] | None:
    if status == 401:
        return {"WWW-Authenticate": 'Bearer realm="emporium"'}
    if status == 429:
        wait = DEFAULT_RETRY_AFTER_SECONDS if retry_after is None else retry_after
        return retry_after_header(wait)
    return None


def from_domain_error(exc: DomainError) -> JSONResponse:
    fields = [{"field": f.field, "message": f.message} for f in exc.fields]
    status = exc.http_status
    return problem(
        status,
        exc.code.value.replace("_", " "),
        exc.message,
        type_=TYPE_BASE + (exc.reason or exc.code.value),
        errors=fields or None,
        headers=_headers_for(status, exc.retry_after),
        reason=exc.reason or exc.code.value,
    )


def field_name(loc: Sequence[Any]) -> str:
    """`("body", "items", 0, "quantity")` -> `items.0.quantity`; `("header", "x")` -> `x`."""
    parts = list(loc)
    if parts and parts[0] in _LOCATIONS and len(parts) > 1:
        parts = parts[1:]
    return ".".join(str(p) for p in parts)


def from_validation_error(exc: RequestValidationError) -> JSONResponse:
    errors = [{"field": field_name(e["loc"]), "message": str(e["msg"])} for e in exc.errors()]
    return problem(
        400,
        "invalid argument",
        "the request has invalid fields",
        type_=TYPE_BASE + "invalid_argument",
        errors=errors,
        reason="invalid_argument",
    )


def from_rpc_error(exc: grpc.aio.AioRpcError) -> JSONResponse:
    from emporium.chassis.rpc.client import domain_error_from_rpc

    if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
        return problem(
            501,
            "not implemented",
            "the backend does not implement this operation yet",
            type_=TYPE_BASE + "not_implemented",
        )
    err = domain_error_from_rpc(exc)
    if err.code == ErrorCode.INTERNAL:
        log.error("backend error", extra={"grpc_code": str(exc.code())})
    return from_domain_error(err)


def allowed_methods(request: Request) -> str:
    """Every method the OpenAPI document lists for this path, HEAD with GET as Starlette
    serves it. (Starlette's own 405 names only the methods of the first route matching the
    path, so `/products` said `Allow: POST`.) Empty for undocumented paths."""
    path = request.scope["path"]
    methods: set[str] = set()
    for template, item in request.app.openapi().get("paths", {}).items():
        if _template(template).fullmatch(path):
            methods |= {method.upper() for method in item}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


@functools.lru_cache(maxsize=256)
def _template(path: str) -> re.Pattern[str]:
    """`/products/{id}` -> a pattern where each `{name}` is one path segment."""
    parts = re.split(r"\{[^}/]+\}", path)
    return re.compile("[^/]+".join(re.escape(part) for part in parts))


def install(app: FastAPI) -> None:
    """Register the exception handlers that turn every failure into problem+json."""

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return from_domain_error(exc)

    @app.exception_handler(grpc.aio.AioRpcError)
    async def _rpc(_: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
        return from_rpc_error(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return from_validation_error(exc)

    @app.exception_handler(TooManyRequests)
    async def _too_many(_: Request, exc: TooManyRequests) -> JSONResponse:
        return problem(
            429,
            "too many requests",
            exc.detail,
            type_=TYPE_BASE + "rate_limited",
            headers=retry_after_header(exc.retry_after),
            reason="rate_limited",
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405 and (allowed := allowed_methods(request)):
            headers["Allow"] = allowed
        return problem(
            exc.status_code, str(exc.detail), type_=TYPE_BASE + "http", headers=headers or None
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return problem(
            500,
            "internal error",
            "an unexpected error occurred; it was logged",
            type_=TYPE_BASE + "internal",
        )
