"""Wiring of payment-service: opens its ports, registers the gRPC servicer and the
readiness checks, and closes everything at shutdown."""

from __future__ import annotations

import os

from emporium.chassis.config import ServiceSettings, grpc_target
from emporium.chassis.db import Database
from emporium.chassis.events.wiring import add_outbox_relay, open_service_bus
from emporium.chassis.rpc.jwks import JwksTokenVerifier
from emporium.chassis.runtime import GrpcRegistration, ServiceApp
from emporium.contracts.rpc.payment.v1 import payment_pb2_grpc
from emporium.services.payment import store
from emporium.services.payment.handlers import Payments
from emporium.services.payment.provider import DEFAULT_URL, URL_VAR, HttpPaymentProvider
from emporium.services.payment.reconciler import Reconciler
from emporium.services.payment.rpc import SERVICE_NAME, PaymentServicer


async def build(settings: ServiceSettings) -> ServiceApp:
    """Everything payment-service runs; nothing is connected before this is called."""
    app = ServiceApp(name=settings.name, settings=settings)
    app.verifier = JwksTokenVerifier(grpc_target("auth"), service=settings.name)
    app.on_stop.append(app.verifier.close)
    db = Database(settings.database_url, service=settings.name)
    app.on_stop.append(db.close)
    app.checks["database"] = lambda: store.ping(db)
    bus = await open_service_bus(app)
    add_outbox_relay(app, db, bus)
    provider = HttpPaymentProvider(os.environ.get(URL_VAR) or DEFAULT_URL)
    app.on_stop.append(provider.close)
    payments = Payments(db, provider)
    app.background.append(Reconciler(payments).run)
    app.grpc_services.append(
        GrpcRegistration(
            add_to_server=payment_pb2_grpc.add_PaymentServiceServicer_to_server,
            servicer=PaymentServicer(payments),
            service_name=SERVICE_NAME,
        )
    )
    return app
