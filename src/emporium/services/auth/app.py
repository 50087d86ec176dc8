"""Wiring of auth-service: opens its ports, loads the signing key, registers the gRPC
servicer, the readiness checks and the administrator bootstrap, and closes everything at
shutdown."""

from __future__ import annotations

import logging
import os
import secrets
import sys

from emporium.chassis.config import ServiceSettings
from emporium.chassis.db import Database
from emporium.chassis.errors import DomainError
from emporium.chassis.kv.factory import open_kv
from emporium.chassis.runtime import (
    BackgroundTask,
    GrpcRegistration,
    ServiceApp,
    StopSignal,
    ping_check,
)
from emporium.contracts.rpc.auth.v1 import auth_pb2_grpc
from emporium.services.auth import store
from emporium.services.auth.domain import KeySet
from emporium.services.auth.handlers import Auth
from emporium.services.auth.rpc import SERVICE_NAME, AuthServicer, LocalTokenVerifier

log = logging.getLogger("emporium.auth")

ADMIN_EMAIL = "admin@emporium.local"
ADMIN_PASSWORD_VAR = "EMPORIUM_ADMIN_PASSWORD"
BOOTSTRAP_RETRY_SECONDS = 1.0


async def build(settings: ServiceSettings) -> ServiceApp:
    """Everything auth-service runs; nothing is connected before this is called."""
    app = ServiceApp(name=settings.name, settings=settings)
    db = Database(settings.database_url)
    app.on_stop.append(db.close)
    app.checks["database"] = lambda: store.ping(db)
    kv = open_kv(settings.kv_url, namespace=settings.name)
    app.on_stop.append(kv.close)
    app.checks["kv"] = ping_check(kv.ping)
    keys = KeySet(store.signing_key_from(os.environ, settings.data_dir))
    auth = Auth(db, kv, keys)
    app.verifier = LocalTokenVerifier(auth)
    app.grpc_services.append(
        GrpcRegistration(
            add_to_server=auth_pb2_grpc.add_AuthServiceServicer_to_server,
            servicer=AuthServicer(auth),
            service_name=SERVICE_NAME,
        )
    )
    app.background.append(admin_bootstrap(auth))
    return app


def admin_bootstrap(auth: Auth) -> BackgroundTask:
    """A background task creating `admin@emporium.local` once the database is migrated
    (it retries until the credentials table answers, then ends)."""

    async def bootstrap(stop: StopSignal) -> None:
        given = os.environ.get(ADMIN_PASSWORD_VAR, "")
        password = given or secrets.token_urlsafe(15)
        while not stop.is_set():
            try:
                created = await auth.ensure_admin(ADMIN_EMAIL, password)
            except DomainError as exc:  # a weak EMPORIUM_ADMIN_PASSWORD: say so, no admin
                log.error("administrator not created: %s", exc.message)
                return
            except Exception as exc:  # database not migrated (yet) or unreachable
                log.warning("administrator bootstrap waiting: %s", type(exc).__name__)
                await stop.wait(BOOTSTRAP_RETRY_SECONDS)
                continue
            if created and not given:
                print(
                    f"[emporium] auth: administrator {ADMIN_EMAIL} password: {password}  "
                    f"(generated once; set {ADMIN_PASSWORD_VAR} to choose it)",
                    file=sys.stderr,
                    flush=True,
                )
            if created:
                log.info("administrator created", extra={"email": ADMIN_EMAIL})
            return

    return bootstrap
