"""Wiring of cdn-service: opens its ports, registers the gRPC servicer and the
readiness checks, and closes everything at shutdown."""

from __future__ import annotations

from emporium.chassis.blob.factory import open_blob
from emporium.chassis.config import ServiceSettings
from emporium.chassis.runtime import GrpcRegistration, ServiceApp, ping_check
from emporium.contracts.rpc.cdn.v1 import cdn_pb2_grpc
from emporium.services.cdn.rpc import SERVICE_NAME, CdnServicer


async def build(settings: ServiceSettings) -> ServiceApp:
    """Everything cdn-service runs; nothing is connected before this is called."""
    app = ServiceApp(name=settings.name, settings=settings)
    blobs = open_blob(settings.blob_url)
    app.on_stop.append(blobs.close)
    app.checks["blob"] = ping_check(blobs.ping)
    app.grpc_services.append(
        GrpcRegistration(
            add_to_server=cdn_pb2_grpc.add_CdnServiceServicer_to_server,
            servicer=CdnServicer(blobs),  # type: ignore[abstract]  # unwritten RPCs answer UNIMPLEMENTED
            service_name=SERVICE_NAME,
        )
    )
    return app
