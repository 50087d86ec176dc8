"""Wiring of auth-service: opens its ports, registers the gRPC servicer and the
readiness checks, and closes everything at shutdown."""

from __future__ import annotations

from emporium.chassis.config import ServiceSettings
from emporium.chassis.db import Database
from emporium.chassis.kv.factory import open_kv
from emporium.chassis.runtime import GrpcRegistration, ServiceApp, ping_check
from emporium.contracts.rpc.auth.v1 import auth_pb2_grpc
from emporium.services.auth import store
from emporium.services.auth.rpc import SERVICE_NAME, AuthServicer


async def build(settings: ServiceSettings) -> ServiceApp:
    """Everything auth-service runs; nothing is connected before this is called."""
    app = ServiceApp(name=settings.name, settings=settings)
    db = Database(settings.database_url)
    app.on_stop.append(db.close)
    app.checks["database"] = lambda: store.ping(db)
    kv = open_kv(settings.kv_url, namespace=settings.name)
    app.on_stop.append(kv.close)
    app.checks["kv"] = ping_check(kv.ping)
    app.grpc_services.append(
        GrpcRegistration(
            add_to_server=auth_pb2_grpc.add_AuthServiceServicer_to_server,
            servicer=AuthServicer(db, kv),  # type: ignore[abstract]  # unwritten RPCs answer UNIMPLEMENTED
            service_name=SERVICE_NAME,
        )
    )
    return app
