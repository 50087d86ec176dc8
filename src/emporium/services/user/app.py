"""Wiring of user-service: opens its ports, registers the gRPC servicer and the
readiness checks, and closes everything at shutdown.

Tokens are checked by auth-service's ValidateToken on every call (DESIGN.md's edge
user -> auth), so a logged-out token is refused here at once.
"""

from __future__ import annotations

from emporium.chassis.config import ServiceSettings, grpc_target
from emporium.chassis.db import Database
from emporium.chassis.events.wiring import add_outbox_relay, open_service_bus
from emporium.chassis.rpc.jwks import ValidatingTokenVerifier
from emporium.chassis.runtime import GrpcRegistration, ServiceApp
from emporium.contracts.rpc.user.v1 import user_pb2_grpc
from emporium.services.user import store
from emporium.services.user.handlers import Users
from emporium.services.user.rpc import SERVICE_NAME, UserServicer


async def build(settings: ServiceSettings) -> ServiceApp:
    """Everything user-service runs; nothing is connected before this is called."""
    app = ServiceApp(name=settings.name, settings=settings)
    db = Database(settings.database_url, service=settings.name)
    app.on_stop.append(db.close)
    app.checks["database"] = lambda: store.ping(db)
    bus = await open_service_bus(app)
    add_outbox_relay(app, db, bus)
    verifier = ValidatingTokenVerifier(grpc_target("auth"), service=settings.name)
    app.on_stop.append(verifier.close)
    app.verifier = verifier

    async def lookup_email(token: str) -> str:
        return (await verifier.validate(token)).email

    app.grpc_services.append(
        GrpcRegistration(
            add_to_server=user_pb2_grpc.add_UserServiceServicer_to_server,
            servicer=UserServicer(Users(db, lookup_email=lookup_email)),
            service_name=SERVICE_NAME,
        )
    )
    return app
