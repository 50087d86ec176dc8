"""Wiring of inventory-service: opens its ports, registers the gRPC servicer, the
`order.created` consumer, the reservation expiry loop and the readiness checks, and closes
everything at shutdown.

The kv port (an availability cache, per DESIGN.md) is opened and health-checked but not
used yet: every read goes to the database, which is correct by construction; a cache would
have to be invalidated after each commit and is left for when GetStock shows up in profiles.
Bearer tokens forwarded by the gateway are verified against auth-service's JWKS.
"""

from __future__ import annotations

from emporium.chassis.config import ServiceSettings, grpc_target
from emporium.chassis.db import Database
from emporium.chassis.events.wiring import add_consumer, add_outbox_relay, open_service_bus
from emporium.chassis.kv.factory import open_kv
from emporium.chassis.rpc.jwks import JwksTokenVerifier
from emporium.chassis.runtime import GrpcRegistration, ServiceApp, ping_check
from emporium.contracts.rpc.inventory.v1 import inventory_pb2_grpc
from emporium.services.inventory import store
from emporium.services.inventory.consumers import order_created_consumer
from emporium.services.inventory.handlers import Inventory
from emporium.services.inventory.rpc import SERVICE_NAME, InventoryServicer
from emporium.services.inventory.sweeper import expiry_loop


async def build(settings: ServiceSettings) -> ServiceApp:
    """Everything inventory-service runs; nothing is connected before this is called."""
    app = ServiceApp(name=settings.name, settings=settings)
    db = Database(settings.database_url, service=settings.name)
    app.on_stop.append(db.close)
    app.checks["database"] = lambda: store.ping(db)
    bus = await open_service_bus(app)
    add_outbox_relay(app, db, bus)
    kv = open_kv(settings.kv_url, namespace=settings.name)
    app.on_stop.append(kv.close)
    app.checks["kv"] = ping_check(kv.ping)
    verifier = JwksTokenVerifier(grpc_target("auth"), service=settings.name)
    app.on_stop.append(verifier.close)
    app.verifier = verifier
    inventory = Inventory(db)
    add_consumer(app, order_created_consumer(db, bus, app.name, inventory))
    app.background.append(expiry_loop(inventory))
    app.grpc_services.append(
        GrpcRegistration(
            add_to_server=inventory_pb2_grpc.add_InventoryServiceServicer_to_server,
            servicer=InventoryServicer(inventory),
            service_name=SERVICE_NAME,
        )
    )
    return app
