"""Wiring of order-service: opens its ports, registers the gRPC servicer and the
readiness checks, runs the checkout recovery loop and the `order.completed` consumer, and
closes everything at shutdown."""

from __future__ import annotations

from emporium.chassis.config import ServiceSettings, grpc_target
from emporium.chassis.db import Database
from emporium.chassis.events.wiring import add_consumer, add_outbox_relay, open_service_bus
from emporium.chassis.rpc.jwks import JwksTokenVerifier
from emporium.chassis.runtime import GrpcRegistration, ServiceApp
from emporium.contracts.rpc.order.v1 import order_pb2_grpc
from emporium.services.order import store
from emporium.services.order.clients import RemoteServices, Targets
from emporium.services.order.consumers import payment_completed_consumer
from emporium.services.order.handlers import CheckoutRunner, Orders, Sagas
from emporium.services.order.rpc import SERVICE_NAME, OrderServicer


async def build(settings: ServiceSettings) -> ServiceApp:
    """Everything order-service runs; nothing is connected before this is called."""
    app = ServiceApp(name=settings.name, settings=settings)
    app.verifier = JwksTokenVerifier(grpc_target("auth"), service=settings.name)
    app.on_stop.append(app.verifier.close)
    db = Database(settings.database_url)
    app.on_stop.append(db.close)
    app.checks["database"] = lambda: store.ping(db)
    bus = await open_service_bus(app)
    add_outbox_relay(app, db, bus)
    remote = RemoteServices(
        Targets(grpc_target("product"), grpc_target("inventory"), grpc_target("payment"))
    )
    app.on_stop.append(remote.close)
    runner = CheckoutRunner(db, remote)
    app.on_stop.append(runner.close)
    app.background.append(runner.run_recovery)
    orders = Orders(db, remote, runner)
    add_consumer(app, payment_completed_consumer(db, bus, orders))
    app.grpc_services.append(
        GrpcRegistration(
            add_to_server=order_pb2_grpc.add_OrderServiceServicer_to_server,
            servicer=OrderServicer(orders, Sagas(db, runner)),
            service_name=SERVICE_NAME,
        )
    )
    return app
