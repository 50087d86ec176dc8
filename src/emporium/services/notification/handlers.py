"""Use cases of notification-service: one per consumed event, the list, and one delivery round.

The documents store has no transactions, so every use case is a sequence of idempotent
writes: upserts of the lookups (user -> address, order -> user) and an insert-if-absent of
the notification whose id is derived from (event id, kind). Running a use case twice for one
event (a redelivery) leaves the same documents and no second notification.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

from emporium.chassis.errors import DomainError, ErrorCode
from emporium.chassis.rpc.identity import Caller, require_owner_or_admin
from emporium.contracts.events import (
    InventoryLowV1,
    OrderCompletedV1,
    OrderCreatedV1,
    UserRegisteredV1,
)
from emporium.services.notification import domain
from emporium.services.notification.domain import DeliveryPolicy, Notification
from emporium.services.notification.mailer import EmailSender
from emporium.services.notification.store import NotificationStore

log = logging.getLogger(__name__)

# How many sendable notifications one delivery round looks at.
DELIVERY_BATCH = 50


class RecipientUnknown(DomainError):
    """`order.completed` for an order whose buyer is not known yet (its `order.created` has
    not arrived and the payload predates `user_id`): retried by the consumer, not a poison
    message, since the other topic usually catches up within the retries."""

    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"buyer of order {order_id!r} not known yet",
            ErrorCode.FAILED_PRECONDITION,
            "recipient_unknown",
        )


async def on_user_registered(
    store: NotificationStore, event_id: str, event: UserRegisteredV1, now: datetime
) -> bool:
    """Remember the address, hand it to notifications that waited for it, welcome."""
    await store.remember_user(event.user_id, event.email, event.name)
    recipient = await store.recipient(event.user_id)
    await store.fill_address(recipient)
    return await store.add(domain.welcome(event_id, event, now))


async def on_order_created(
    store: NotificationStore, event_id: str, event: OrderCreatedV1, now: datetime
) -> bool:
    await store.remember_order(event.order_id, event.user_id)
    recipient = await store.recipient(event.user_id)
    return await store.add(domain.order_confirmation(event_id, event, recipient, now))


async def on_order_completed(
    store: NotificationStore, event_id: str, event: OrderCompletedV1, now: datetime
) -> bool:
    user_id = event.user_id or await store.order_user(event.order_id)
    if user_id is None:
        raise RecipientUnknown(event.order_id)
    recipient = await store.recipient(user_id)
    receipt = domain.payment_receipt(event_id, event, recipient, now)
    return receipt is not None and await store.add(receipt)


async def on_inventory_low(
    store: NotificationStore,
    event_id: str,
    event: InventoryLowV1,
    now: datetime,
    admin_email: str | None,
) -> bool:
    alert = domain.low_stock_alert(event_id, event, domain.admin_recipient(admin_email), now)
    return await store.add(alert)


async def list_notifications(
    store: NotificationStore, caller: Caller, user_id: str, limit: str | None, cursor: str | None
) -> dict[str, Any]:
    """`GET /api/v1/notifications`: one newest-first page of `user_id`'s notifications
    (the caller's own when empty; someone else's for an admin only)."""
    owner = user_id or caller.user_id
    require_owner_or_admin(owner)
    size = domain.parse_limit(limit)
    after = domain.decode_cursor(cursor)
    recipients = domain.visible_recipients(owner, caller.user_id, caller.is_admin)
    found = await store.newest_first(recipients, after, size + 1)
    return domain.page(found, size)


async def deliver_due(
    store: NotificationStore,
    sender: EmailSender,
    policy: DeliveryPolicy,
    now: datetime,
    jitter: Callable[[], float] = random.random,
) -> int:
    """One round of the sender: attempt every due notification once, save the outcome;
    how many were attempted."""
    attempted = 0
    for notification in await store.ready(DELIVERY_BATCH):
        if not policy.due(notification, now):
            continue
        attempted += 1
        await store.save(await _attempt(sender, policy, notification, now, jitter))
    return attempted


async def _attempt(
    sender: EmailSender,
    policy: DeliveryPolicy,
    notification: Notification,
    now: datetime,
    jitter: Callable[[], float],
) -> Notification:
    try:
        await sender.send(notification)
    except Exception as exc:
        log.warning(
            "notification delivery failed",
            extra={"notification_id": notification.id, "attempt": notification.attempts + 1},
            exc_info=True,
        )
        return policy.failed(notification, f"{type(exc).__name__}: {exc}"[:500], now, jitter())
    return policy.sent(notification, now)
