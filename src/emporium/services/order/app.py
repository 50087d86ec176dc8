"""Wiring of order-service: opens its ports, registers the gRPC servicer and the
readiness checks, runs the checkout recovery loop and the `order.completed` consumer, and
closes everything at shutdown."""

from __future__ import annotations

import os
from collections.abc import Mapping

from emporium.chassis.backoff import Backoff
from emporium.chassis.config import ConfigError, ServiceSettings, grpc_target
from emporium.chassis.db import Database
from emporium.chassis.events.wiring import add_consumer, add_outbox_relay, open_service_bus
from emporium.chassis.rpc.jwks import JwksTokenVerifier
from emporium.chassis.runtime import GrpcRegistration, ServiceApp
from emporium.contracts.rpc.order.v1 import order_pb2_grpc
from emporium.services.order import store
from emporium.services.order.clients import RemoteServices, Targets
from emporium.services.order.consumers import payment_completed_consumer
from emporium.services.order.handlers import CheckoutRunner, Orders, Sagas
from emporium.services.order.handlers.checkout import PATIENT_BACKOFF
from emporium.services.order.rpc import SERVICE_NAME, OrderServicer
from emporium.services.order.saga import RetryPolicy

ATTEMPTS_VAR = "EMPORIUM_ORDER_COMPENSATION_ATTEMPTS"
MAX_DELAY_VAR = "EMPORIUM_ORDER_COMPENSATION_MAX_DELAY_SECONDS"


def retry_settings(env: Mapping[str, str]) -> tuple[RetryPolicy, Backoff]:
    """How long a compensation is retried before its saga is parked: attempts and the
    longest pause between two (defaults: 20 and 15 s, about four minutes in all)."""
    default = RetryPolicy()
    try:
        attempts = int(env.get(ATTEMPTS_VAR, default.compensation_attempts))
        longest = float(env.get(MAX_DELAY_VAR, PATIENT_BACKOFF.maximum))
    except ValueError as exc:
        raise ConfigError(f"{ATTEMPTS_VAR}/{MAX_DELAY_VAR}: {exc}") from None
    if not (1 <= attempts <= 1000 and 0 < longest <= 3600):
        raise ConfigError(f"{ATTEMPTS_VAR} must be 1-1000 and {MAX_DELAY_VAR} 0-3600 s")
    patient = Backoff(PATIENT_BACKOFF.initial, PATIENT_BACKOFF.multiplier, longest, 0.3)
    return RetryPolicy(compensation_attempts=attempts), patient


async def build(settings: ServiceSettings) -> ServiceApp:
    """Everything order-service runs; nothing is connected before this is called."""
    app = ServiceApp(name=settings.name, settings=settings)
    app.verifier = JwksTokenVerifier(grpc_target("auth"), service=settings.name)
    app.on_stop.append(app.verifier.close)
    db = Database(settings.database_url, service=settings.name)
    app.on_stop.append(db.close)
    app.checks["database"] = lambda: store.ping(db)
    bus = await open_service_bus(app)
    add_outbox_relay(app, db, bus)
    remote = RemoteServices(
        Targets(grpc_target("product"), grpc_target("inventory"), grpc_target("payment"))
    )
    app.on_stop.append(remote.close)
    policy, patient = retry_settings(os.environ)
    runner = CheckoutRunner(db, remote, policy=policy, patient_backoff=patient)
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
