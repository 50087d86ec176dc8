"""`GET /healthz` (the gateway process) and `GET /api/v1/health` (the whole platform)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from emporium.chassis.catalog import BACKENDS
from emporium.services.api_gateway.backends import SERVICE_NAME

router = APIRouter(tags=["platform"])
HEALTH_TIMEOUT_SECONDS = 1.0


class PlatformHealth(BaseModel):
    status: str
    services: dict[str, str]


class ProcessHealth(BaseModel):
    """What the service runtime's `/healthz` answers in every process (chassis.runtime):
    in production the runtime serves this path before the gateway's routes see it."""

    status: str = Field(description="`ok`, or `fail` when a readiness check failed")
    service: str
    checks: dict[str, str] = Field(description="readiness check -> `ok` | `fail`")


@router.get(
    "/healthz",
    response_model=ProcessHealth,
    summary="200 when the gateway process is up",
    responses={503: {"model": ProcessHealth, "description": "A readiness check failed"}},
)
async def healthz() -> ProcessHealth:
    return ProcessHealth(status="ok", service=SERVICE_NAME, checks={})


@router.get(
    "/api/v1/health",
    response_model=PlatformHealth,
    responses={503: {"model": PlatformHealth}},
    summary="ok when all eleven backends answer their gRPC health check",
)
async def platform_health(request: Request) -> JSONResponse:
    targets: dict[str, str] = request.app.state.targets
    names = [b.name for b in BACKENDS]
    results = await asyncio.gather(
        *(
            request.app.state.prober.check(targets[n], timeout=HEALTH_TIMEOUT_SECONDS)
            for n in names
        ),
        return_exceptions=True,
    )
    services = {
        n: ("ok" if r is True else "unavailable") for n, r in zip(names, results, strict=True)
    }
    ok = all(v == "ok" for v in services.values())
    return JSONResponse(
        {"status": "ok" if ok else "degraded", "services": services}, status_code=200 if ok else 503
    )
