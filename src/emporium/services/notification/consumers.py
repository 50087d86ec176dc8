"""Event entrypoint of notification-service: the four topics -> notifications.

One consumer group (`notification`) over `user.registered`, `order.created`,
`order.completed` and `inventory.low`. No inbox table: each handler's writes are idempotent
(upserts, and an insert-if-absent of a notification whose id is derived from the event id),
so the consumer runs with the `StoreIdempotentInbox`. The consumer calls no other service; if
it ever does, it acts as `Caller.system("notification")`, which the handler sets.
"""

from __future__ import annotations

from emporium.chassis.bus.base import EventBus
from emporium.chassis.events.consumer import EventConsumer
from emporium.chassis.events.envelope import Event
from emporium.chassis.events.inbox import Handler, StoreIdempotentInbox
from emporium.chassis.rpc.identity import Caller, acting_as
from emporium.contracts.events import (
    InventoryLowV1,
    OrderCompletedV1,
    OrderCreatedV1,
    UserRegisteredV1,
)
from emporium.contracts.events.registry import decode_event
from emporium.services.notification import handlers
from emporium.services.notification.store import NotificationStore

GROUP = "notification"
TOPICS = (
    UserRegisteredV1.TOPIC,
    OrderCreatedV1.TOPIC,
    OrderCompletedV1.TOPIC,
    InventoryLowV1.TOPIC,
)


def notification_handler(store: NotificationStore, admin_email: str | None) -> Handler:
    """Decode (an unknown type or a bad payload is poison: dead-lettered) and dispatch.

    A notification is dated with the event's `time` (when it happened), which is also the
    same on every redelivery."""

    async def handle(_: object, event: Event) -> None:
        payload = decode_event(event)
        with acting_as(Caller.system(GROUP)):
            if isinstance(payload, UserRegisteredV1):
                await handlers.on_user_registered(store, event.id, payload, event.time)
            elif isinstance(payload, OrderCreatedV1):
                await handlers.on_order_created(store, event.id, payload, event.time)
            elif isinstance(payload, OrderCompletedV1):
                await handlers.on_order_completed(store, event.id, payload, event.time)
            elif isinstance(payload, InventoryLowV1):
                await handlers.on_inventory_low(store, event.id, payload, event.time, admin_email)

    return handle


def notification_consumer(
    bus: EventBus, service: str, store: NotificationStore, admin_email: str | None
) -> EventConsumer:
    """The consumer group that turns events into notifications."""
    return EventConsumer(
        None,
        bus,
        service,
        GROUP,
        list(TOPICS),
        notification_handler(store, admin_email),
        inbox=StoreIdempotentInbox(),
    )
