"""Wiring of search-service: opens its ports, registers the gRPC servicer and the
readiness checks, and closes everything at shutdown."""

from __future__ import annotations

from emporium.chassis.config import ServiceSettings
from emporium.chassis.runtime import GrpcRegistration, ServiceApp, ping_check
from emporium.chassis.search.factory import open_search
from emporium.contracts.rpc.search.v1 import search_pb2_grpc
from emporium.services.search.rpc import SERVICE_NAME, SearchServicer


async def build(settings: ServiceSettings) -> ServiceApp:
    """Everything search-service runs; nothing is connected before this is called."""
    app = ServiceApp(name=settings.name, settings=settings)
    index = open_search(settings.search_url)
    app.on_stop.append(index.close)
    app.checks["search"] = ping_check(index.ping)
    app.grpc_services.append(
        GrpcRegistration(
            add_to_server=search_pb2_grpc.add_SearchServiceServicer_to_server,
            servicer=SearchServicer(index),  # type: ignore[abstract]  # unwritten RPCs answer UNIMPLEMENTED
            service_name=SERVICE_NAME,
        )
    )
    return app
