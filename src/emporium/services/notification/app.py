"""Wiring of notification-service: opens the documents store and the bus, registers the gRPC
servicer, the event consumer, the sender loop and the readiness checks, and closes
everything at shutdown.

The embedded sender writes `.eml` files to `<data_dir>/outbox-mail/`. Stock alerts go to the
operators' address `EMPORIUM_NOTIFICATION_ADMIN_EMAIL` (default `admin@emporium.local`, the
administrator the embedded profile creates).
"""

from __future__ import annotations

import os

from emporium.chassis.config import ServiceSettings, grpc_target
from emporium.chassis.documents.factory import open_documents
from emporium.chassis.events.wiring import add_consumer, open_service_bus
from emporium.chassis.rpc.jwks import JwksTokenVerifier
from emporium.chassis.runtime import GrpcRegistration, ServiceApp, ping_check
from emporium.contracts.rpc.notification.v1 import notification_pb2_grpc
from emporium.services.notification.consumers import notification_consumer
from emporium.services.notification.delivery import delivery_loop
from emporium.services.notification.mailer import OUTBOX_DIR, DirectoryEmailSender
from emporium.services.notification.rpc import SERVICE_NAME, NotificationServicer
from emporium.services.notification.store import NotificationStore

ADMIN_EMAIL_VAR = "EMPORIUM_NOTIFICATION_ADMIN_EMAIL"
DEFAULT_ADMIN_EMAIL = "admin@emporium.local"


async def build(settings: ServiceSettings) -> ServiceApp:
    """Everything notification-service runs; nothing is connected before this is called."""
    app = ServiceApp(name=settings.name, settings=settings)
    documents = open_documents(settings.documents_url)
    app.on_stop.append(documents.close)
    app.checks["documents"] = ping_check(documents.ping)
    verifier = JwksTokenVerifier(grpc_target("auth"), service=settings.name)
    app.on_stop.append(verifier.close)
    app.verifier = verifier
    store = NotificationStore(documents)
    admin_email = os.environ.get(ADMIN_EMAIL_VAR, DEFAULT_ADMIN_EMAIL)
    bus = await open_service_bus(app)
    add_consumer(app, notification_consumer(bus, app.name, store, admin_email))
    sender = DirectoryEmailSender(settings.data_dir.resolve() / OUTBOX_DIR)
    app.background.append(delivery_loop(store, sender))
    app.grpc_services.append(
        GrpcRegistration(
            add_to_server=notification_pb2_grpc.add_NotificationServiceServicer_to_server,
            servicer=NotificationServicer(store),
            service_name=SERVICE_NAME,
        )
    )
    return app
