"""gRPC entrypoint of notification-service: translates requests and delegates to handlers.

RPCs without a method here are inherited from the generated servicer and answer
UNIMPLEMENTED, which is honest until their use case exists.
"""

from __future__ import annotations

from emporium.chassis.documents.base import DocumentStore
from emporium.contracts.rpc.notification.v1 import notification_pb2, notification_pb2_grpc

SERVICE_NAME: str = notification_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name


class NotificationServicer(notification_pb2_grpc.NotificationServiceServicer):
    """`NotificationService` (notification.proto)."""

    def __init__(self, documents: DocumentStore) -> None:
        self.documents = documents
