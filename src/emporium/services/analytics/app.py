"""Wiring of analytics-service: opens the OLAP store and the bus, registers the gRPC
servicer, the facts consumer and the readiness checks, and closes everything at shutdown.

The fact tables are created on first use by `FactStore` (idempotent DDL)."""

from __future__ import annotations

from emporium.chassis.config import ServiceSettings, grpc_target
from emporium.chassis.events.wiring import add_consumer, open_service_bus
from emporium.chassis.olap.factory import open_olap
from emporium.chassis.rpc.jwks import JwksTokenVerifier
from emporium.chassis.runtime import GrpcRegistration, ServiceApp, ping_check
from emporium.contracts.rpc.analytics.v1 import analytics_pb2_grpc
from emporium.services.analytics.consumers import facts_consumer
from emporium.services.analytics.rpc import SERVICE_NAME, AnalyticsServicer
from emporium.services.analytics.store import FactStore


async def build(settings: ServiceSettings) -> ServiceApp:
    """Everything analytics-service runs; nothing is connected before this is called."""
    app = ServiceApp(name=settings.name, settings=settings)
    olap = open_olap(settings.olap_url)
    app.on_stop.append(olap.close)
    app.checks["olap"] = ping_check(olap.ping)
    verifier = JwksTokenVerifier(grpc_target("auth"), service=settings.name)
    app.on_stop.append(verifier.close)
    app.verifier = verifier
    store = FactStore(olap)
    bus = await open_service_bus(app)
    add_consumer(app, facts_consumer(bus, app.name, store))
    app.grpc_services.append(
        GrpcRegistration(
            add_to_server=analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server,
            servicer=AnalyticsServicer(store),
            service_name=SERVICE_NAME,
        )
    )
    return app
