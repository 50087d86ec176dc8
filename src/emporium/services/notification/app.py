"""Wiring of notification-service: opens its ports, registers the gRPC servicer and the
readiness checks, and closes everything at shutdown."""

from __future__ import annotations

from emporium.chassis.config import ServiceSettings
from emporium.chassis.runtime import GrpcRegistration, ServiceApp
from emporium.contracts.rpc.notification.v1 import notification_pb2_grpc
from emporium.services.notification.rpc import SERVICE_NAME, NotificationServicer


async def build(settings: ServiceSettings) -> ServiceApp:
    """Everything notification-service runs; nothing is connected before this is called."""
    app = ServiceApp(name=settings.name, settings=settings)
    # TODO(documents): open the notification store with
    # emporium.chassis.documents (settings.documents_url) once that port exists,
    # pass it to the servicer and add a "documents" readiness check.
    app.grpc_services.append(
        GrpcRegistration(
            add_to_server=notification_pb2_grpc.add_NotificationServiceServicer_to_server,
            servicer=NotificationServicer(),  # type: ignore[abstract]  # unwritten RPCs answer UNIMPLEMENTED
            service_name=SERVICE_NAME,
        )
    )
    return app
