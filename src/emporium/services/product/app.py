"""Wiring of product-service: opens its ports, registers the gRPC servicer and the
readiness checks, and closes everything at shutdown.

Bearer tokens forwarded by the gateway are verified locally against auth-service's JWKS
(`JwksTokenVerifier`), so a forged `x-emporium-roles: admin` next to a user's token does not
make a catalog write pass.
"""

from __future__ import annotations

from emporium.chassis.config import ServiceSettings, grpc_target
from emporium.chassis.db import Database
from emporium.chassis.events.wiring import add_outbox_relay, open_service_bus
from emporium.chassis.rpc.jwks import JwksTokenVerifier
from emporium.chassis.runtime import GrpcRegistration, ServiceApp
from emporium.contracts.rpc.product.v1 import product_pb2_grpc
from emporium.services.product import store
from emporium.services.product.handlers import Catalog
from emporium.services.product.rpc import SERVICE_NAME, ProductServicer


async def build(settings: ServiceSettings) -> ServiceApp:
    """Everything product-service runs; nothing is connected before this is called."""
    app = ServiceApp(name=settings.name, settings=settings)
    db = Database(settings.database_url, service=settings.name)
    app.on_stop.append(db.close)
    app.checks["database"] = lambda: store.ping(db)
    bus = await open_service_bus(app)
    add_outbox_relay(app, db, bus)
    verifier = JwksTokenVerifier(grpc_target("auth"), service=settings.name)
    app.on_stop.append(verifier.close)
    app.verifier = verifier
    app.grpc_services.append(
        GrpcRegistration(
            add_to_server=product_pb2_grpc.add_ProductServiceServicer_to_server,
            servicer=ProductServicer(Catalog(db)),
            service_name=SERVICE_NAME,
        )
    )
    return app
