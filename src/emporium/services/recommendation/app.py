"""Wiring of recommendation-service: opens the kv feature store and the bus, registers the
gRPC servicer, the feature consumer and the readiness checks, and closes everything at
shutdown."""

from __future__ import annotations

from emporium.chassis.config import ServiceSettings, grpc_target
from emporium.chassis.events.wiring import add_consumer, open_service_bus
from emporium.chassis.kv.factory import open_kv
from emporium.chassis.rpc.jwks import JwksTokenVerifier
from emporium.chassis.runtime import GrpcRegistration, ServiceApp, ping_check
from emporium.contracts.rpc.recommendation.v1 import recommendation_pb2_grpc
from emporium.services.recommendation.consumers import feature_consumer
from emporium.services.recommendation.rpc import SERVICE_NAME, RecommendationServicer
from emporium.services.recommendation.store import FeatureStore


async def build(settings: ServiceSettings) -> ServiceApp:
    """Everything recommendation-service runs; nothing is connected before this is called."""
    app = ServiceApp(name=settings.name, settings=settings)
    kv = open_kv(settings.kv_url, namespace=settings.name)
    app.on_stop.append(kv.close)
    app.checks["kv"] = ping_check(kv.ping)
    verifier = JwksTokenVerifier(grpc_target("auth"), service=settings.name)
    app.on_stop.append(verifier.close)
    app.verifier = verifier
    store = FeatureStore(kv)
    bus = await open_service_bus(app)
    add_consumer(app, feature_consumer(bus, app.name, store))
    app.grpc_services.append(
        GrpcRegistration(
            add_to_server=recommendation_pb2_grpc.add_RecommendationServiceServicer_to_server,
            servicer=RecommendationServicer(store),
            service_name=SERVICE_NAME,
        )
    )
    return app
