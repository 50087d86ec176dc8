"""Wiring of auth-service: opens its ports, loads the signing key, registers the gRPC
servicer, the readiness checks and the administrator bootstrap, and closes everything at
shutdown."""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Mapping

from emporium.chassis.config import ConfigError, ServiceSettings
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
from emporium.services.auth.handlers import MAX_ADDRESS_FAILURES, MAX_LOGIN_FAILURES, Auth
from emporium.services.auth.rpc import SERVICE_NAME, AuthServicer, LocalTokenVerifier

log = logging.getLogger("emporium.auth")

ADMIN_EMAIL = "admin@emporium.local"
ADMIN_PASSWORD_VAR = "EMPORIUM_ADMIN_PASSWORD"
LIMIT_PER_ACCOUNT_VAR = "EMPORIUM_AUTH_LOGIN_LIMIT_PER_ACCOUNT"
LIMIT_PER_ADDRESS_VAR = "EMPORIUM_AUTH_LOGIN_LIMIT_PER_ADDRESS"
BOOTSTRAP_RETRY_SECONDS = 1.0


async def build(settings: ServiceSettings) -> ServiceApp:
    """Everything auth-service runs; nothing is connected before this is called."""
    app = ServiceApp(name=settings.name, settings=settings)
    db = Database(settings.database_url, service=settings.name)
    app.on_stop.append(db.close)
    app.checks["database"] = lambda: store.ping(db)
    kv = open_kv(settings.kv_url, namespace=settings.name)
    app.on_stop.append(kv.close)
    app.checks["kv"] = ping_check(kv.ping)
    keys = KeySet(store.signing_key_from(os.environ, settings.data_dir))
    auth = Auth(
        db,
        kv,
        keys,
        max_login_failures=login_limit(os.environ, LIMIT_PER_ACCOUNT_VAR, MAX_LOGIN_FAILURES),
        max_address_failures=login_limit(os.environ, LIMIT_PER_ADDRESS_VAR, MAX_ADDRESS_FAILURES),
    )
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


def login_limit(environ: Mapping[str, str], variable: str, default: int) -> int:
    """Login attempts allowed per 5-minute window (per account, or per client address:
    raise the latter for many users behind one NAT, or a load test from one host)."""
    raw = environ.get(variable, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{variable}: must be a positive integer, got {raw!r}")
    return int(raw)


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
