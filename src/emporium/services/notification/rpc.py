"""gRPC entrypoint of notification-service: translates requests and delegates to handlers.

`ListNotifications` lists the caller's own notifications (an admin's own list includes the
operators' stock alerts); an admin may list another user's by naming `user_id`.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from emporium.chassis.rpc.identity import require_authenticated
from emporium.contracts.rpc.notification.v1 import notification_pb2, notification_pb2_grpc
from emporium.services.notification import handlers
from emporium.services.notification.store import NotificationStore

SERVICE_NAME: str = notification_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name


class NotificationServicer(notification_pb2_grpc.NotificationServiceServicer):
    """`NotificationService` (notification.proto)."""

    def __init__(self, store: NotificationStore) -> None:
        self.store = store

    async def ListNotifications(
        self, request: notification_pb2.ListNotificationsRequest, context: Any
    ) -> notification_pb2.ListNotificationsResponse:
        caller = require_authenticated()
        page = await handlers.list_notifications(
            self.store,
            caller,
            request.user_id,
            str(request.limit) if request.limit else None,
            request.cursor or None,
        )
        return notification_pb2.ListNotificationsResponse(
            items=[
                notification_pb2.Notification(
                    id=item["id"],
                    user_id=request.user_id or caller.user_id,
                    channel=item["channel"],
                    kind=item["kind"],
                    status=item["status"],
                    subject=item["subject"],
                    created_at=timestamp(item["created_at"]),
                )
                for item in page["items"]
            ],
            next_cursor=page["next_cursor"] or "",
        )


def timestamp(rfc3339: str) -> Timestamp:
    stamp = Timestamp()
    stamp.FromJsonString(rfc3339)
    return stamp
