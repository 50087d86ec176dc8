"""Wiring of recommendation-service: opens its ports, registers the gRPC servicer and the
readiness checks, and closes everything at shutdown."""

from __future__ import annotations

from emporium.chassis.config import ServiceSettings
from emporium.chassis.kv.factory import open_kv
from emporium.chassis.runtime import GrpcRegistration, ServiceApp, ping_check
from emporium.contracts.rpc.recommendation.v1 import recommendation_pb2_grpc
from emporium.services.recommendation.rpc import SERVICE_NAME, RecommendationServicer


async def build(settings: ServiceSettings) -> ServiceApp:
    """Everything recommendation-service runs; nothing is connected before this is called."""
    app = ServiceApp(name=settings.name, settings=settings)
    kv = open_kv(settings.kv_url, namespace=settings.name)
    app.on_stop.append(kv.close)
    app.checks["kv"] = ping_check(kv.ping)
    app.grpc_services.append(
        GrpcRegistration(
            add_to_server=recommendation_pb2_grpc.add_RecommendationServiceServicer_to_server,
            servicer=RecommendationServicer(kv),  # type: ignore[abstract]  # unwritten RPCs answer UNIMPLEMENTED
            service_name=SERVICE_NAME,
        )
    )
    return app
