"""Wiring of the gateway: the FastAPI app, its routers and error handlers."""

from __future__ import annotations

from fastapi import FastAPI

from emporium.chassis.catalog import BACKENDS
from emporium.chassis.config import ServiceSettings, grpc_target
from emporium.chassis.rpc.health import HealthProber
from emporium.chassis.runtime import ServiceApp
from emporium.services.api_gateway import health, problems


def create_api(targets: dict[str, str]) -> FastAPI:
    api = FastAPI(
        title="Emporium API",
        version="1.0.0",
        description="The public REST contract of Emporium (API.md).",
    )
    api.state.targets = targets
    api.state.prober = HealthProber()
    problems.install(api)
    api.include_router(health.router)
    return api


async def build(settings: ServiceSettings) -> ServiceApp:
    targets = {b.name: grpc_target(b.name) for b in BACKENDS}
    api = create_api(targets)
    return ServiceApp(
        name=settings.name, settings=settings, http_app=api, on_stop=[api.state.prober.close]
    )
