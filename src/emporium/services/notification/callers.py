"""Which services may call notification-service's RPCs (`chassis.rpc.acl`: enforced by the server
interceptor; a method missing here is refused to everybody)."""

from __future__ import annotations

from emporium.chassis.rpc.acl import GATEWAY, CallerTable
from emporium.contracts.rpc.notification.v1 import notification_pb2

CALLERS = [
    CallerTable.of(
        notification_pb2.DESCRIPTOR.services_by_name["NotificationService"],
        {
            "ListNotifications": {GATEWAY},
        },
    )
]
