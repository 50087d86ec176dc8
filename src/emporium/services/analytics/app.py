"""Wiring of analytics-service: opens its ports, registers the gRPC servicer and the
readiness checks, and closes everything at shutdown."""

from __future__ import annotations

from emporium.chassis.config import ServiceSettings
from emporium.chassis.olap.factory import open_olap
from emporium.chassis.runtime import GrpcRegistration, ServiceApp, ping_check
from emporium.contracts.rpc.analytics.v1 import analytics_pb2_grpc
from emporium.services.analytics.rpc import SERVICE_NAME, AnalyticsServicer


async def build(settings: ServiceSettings) -> ServiceApp:
    """Everything analytics-service runs; nothing is connected before this is called."""
    app = ServiceApp(name=settings.name, settings=settings)
    olap = open_olap(settings.olap_url)
    app.on_stop.append(olap.close)
    app.checks["olap"] = ping_check(olap.ping)
    app.grpc_services.append(
        GrpcRegistration(
            add_to_server=analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server,
            servicer=AnalyticsServicer(olap),  # type: ignore[abstract]  # unwritten RPCs answer UNIMPLEMENTED
            service_name=SERVICE_NAME,
        )
    )
    return app
