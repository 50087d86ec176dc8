"""Every read and write of notification-service's documents (the documents port).

Collections (names fixed by the service; `prefix` only isolates tests on a shared server):

| collection | `_id` | holds |
|---|---|---|
| `notifications` | UUID5 of (event id, kind) | `domain.to_document` + sort keys (below) |
| `notification_users` | user id | `email`, `name` from `user.registered` |
| `notification_orders` | order id | `user_id` from `order.created` |

The documents port filters by equality and sorts by one field, so the stored form carries
integer sort keys next to the domain's RFC 3339 strings (a string like `...:00Z` would sort
after `...:00.5Z`): `created_us` (microseconds since the epoch) for newest-first lists and
`next_attempt_us` for the sender, plus `ready` (PENDING with a known address) so the sender
asks only for what it can send.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

from emporium.chassis.documents.base import DocumentStore, DuplicateDocument
from emporium.services.notification.domain import (
    ListPosition,
    Notification,
    Recipient,
    Status,
    from_document,
    to_document,
)

NOTIFICATIONS: Final = "notifications"
USERS: Final = "notification_users"
ORDERS: Final = "notification_orders"
# Page size of the scans behind a keyset page (the port has no range filter).
_SCAN_BATCH: Final = 200
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def micros(moment: datetime) -> int:
    """Microseconds since the epoch: an order-preserving integer sort key."""
    delta = moment.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class NotificationStore:
    """Notifications and the two lookups that find their recipients."""

    def __init__(self, documents: DocumentStore, prefix: str = "") -> None:
        self.documents = documents
        self.notifications = f"{prefix}{NOTIFICATIONS}"
        self.users = f"{prefix}{USERS}"
        self.orders = f"{prefix}{ORDERS}"
        self._indexed = False

    async def ensure_indexes(self) -> None:
        """Indexes for the list and the sender's scan (idempotent, once per process)."""
        if self._indexed:
            return
        for field in ("user_id", "created_us", "ready", "next_attempt_us"):
            await self.documents.create_index(self.notifications, field)
        self._indexed = True

    # -- recipients --------------------------------------------------------------------------

    async def remember_user(self, user_id: str, email: str, name: str) -> None:
        await self.documents.upsert(self.users, {"_id": user_id, "email": email, "name": name})

    async def recipient(self, user_id: str) -> Recipient:
        """Who `user_id` is, with `email=None` while `user.registered` has not arrived."""
        doc = await self.documents.get(self.users, user_id)
        if doc is None:
            return Recipient(user_id)
        return Recipient(user_id, doc.get("email"), str(doc.get("name") or ""))

    async def remember_order(self, order_id: str, user_id: str) -> None:
        await self.documents.upsert(self.orders, {"_id": order_id, "user_id": user_id})

    async def order_user(self, order_id: str) -> str | None:
        doc = await self.documents.get(self.orders, order_id)
        return str(doc["user_id"]) if doc else None

    # -- notifications -----------------------------------------------------------------------

    async def add(self, notification: Notification) -> bool:
        """Insert unless a notification with this id exists; False for a duplicate (the
        redelivery of the event that made it)."""
        await self.ensure_indexes()
        try:
            await self.documents.insert(self.notifications, _stored(notification))
        except DuplicateDocument:
            return False
        return True

    async def save(self, notification: Notification) -> None:
        await self.documents.upsert(self.notifications, _stored(notification))

    async def get(self, notification_id: str) -> Notification | None:
        doc = await self.documents.get(self.notifications, notification_id)
        return from_document(doc) if doc else None

    async def awaiting_address(self, user_id: str) -> list[Notification]:
        """PENDING notifications of `user_id` made before its address was known."""
        docs = await self.documents.find(
            self.notifications, {"user_id": user_id, "email": None, "status": Status.PENDING.value}
        )
        return [from_document(d) for d in docs]

    async def fill_address(self, recipient: Recipient) -> int:
        """Give the waiting notifications of `recipient` its address; how many changed."""
        waiting = await self.awaiting_address(recipient.user_id)
        for notification in waiting:
            await self.save(replace(notification, email=recipient.email))
        return len(waiting)

    async def ready(self, limit: int) -> list[Notification]:
        """Sendable notifications (PENDING, address known), earliest next attempt first; the
        caller applies `DeliveryPolicy.due` (the port has no `<=` filter)."""
        await self.ensure_indexes()
        docs = await self.documents.find(
            self.notifications, {"ready": True}, sort="next_attempt_us", limit=limit
        )
        return [from_document(d) for d in docs]

    async def newest_first(
        self, recipients: Iterable[str], after: ListPosition | None, count: int
    ) -> list[Notification]:
        """Up to `count` notifications of any of `recipients`, newest first (ties by id,
        descending), strictly after `after` in that order."""
        await self.ensure_indexes()
        found: list[Notification] = []
        for user_id in dict.fromkeys(recipients):
            found.extend(await self._scan(user_id, after, count))
        found.sort(key=lambda n: (micros(n.created_at), n.id), reverse=True)
        return found[:count]

    async def _scan(
        self, user_id: str, after: ListPosition | None, count: int
    ) -> list[Notification]:
        """Walk one recipient's notifications newest first until `count` lie after `after`."""
        limit = (micros(after.created_at), after.id) if after else None
        out: list[Notification] = []
        skip = 0
        while len(out) < count:
            docs = await self.documents.find(
                self.notifications,
                {"user_id": user_id},
                sort="created_us",
                descending=True,
                limit=_SCAN_BATCH,
                skip=skip,
            )
            for doc in docs:
                if limit is None or (int(doc["created_us"]), str(doc["_id"])) < limit:
                    out.append(from_document(doc))
            if len(docs) < _SCAN_BATCH:
                break
            skip += _SCAN_BATCH
        return out[:count]


def _stored(notification: Notification) -> dict[str, Any]:
    doc = to_document(notification)
    doc["created_us"] = micros(notification.created_at)
    doc["next_attempt_us"] = (
        micros(notification.next_attempt_at) if notification.next_attempt_at else None
    )
    doc["ready"] = notification.deliverable
    return doc
