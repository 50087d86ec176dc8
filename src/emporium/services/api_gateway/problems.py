"""RFC 9457 problem+json for every error the gateway returns.

Backends raise `DomainError`; it arrives here as a gRPC status plus `x-error-*` trailing
metadata, and is rendered once, in one place, as problem+json. Request validation errors
(pydantic) become 422 with `errors` naming each field; nothing is ever a bare 500 page.
"""

from __future__ import annotations

import logging
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


def problem(
    status: int,
    title: str,
    detail: str = "",
    *,
    type_: str = "about:blank",
    errors: list[dict[str, str]] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def from_domain_error(exc: DomainError) -> JSONResponse:
    fields = [{"field": f.field, "message": f.message} for f in exc.fields]
    return problem(
        exc.http_status,
        exc.code.value.replace("_", " "),
        exc.message,
        type_=TYPE_BASE + (exc.reason or exc.code.value),
        errors=fields or None,
    )


def install(app: FastAPI) -> None:
    """Register the exception handlers that turn every failure into problem+json."""

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return from_domain_error(exc)

    @app.exception_handler(grpc.aio.AioRpcError)
    async def _rpc(_: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
        from emporium.chassis.rpc.client import domain_error_from_rpc

        err = domain_error_from_rpc(exc)
        if err.code == ErrorCode.INTERNAL:
            log.error("backend error", extra={"grpc_code": str(exc.code())})
        return from_domain_error(err)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]}
            for e in exc.errors()
        ]
        return problem(
            422,
            "invalid request",
            "the request has invalid fields",
            type_=TYPE_BASE + "invalid_argument",
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), type_=TYPE_BASE + "http")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return problem(
            500,
            "internal error",
            "an unexpected error occurred; it was logged",
            type_=TYPE_BASE + "internal",
        )
