"""Notification-service rules: which event makes which message, how it reads, and how its
delivery is retried.

Pure: no I/O. The consumers call one rule per event with the recipient the handler looked
up (events do not all carry an address: `order.created` names the user, `order.completed`
names it only in newer payloads (`user_id` is optional), so the service remembers
user -> email from `user.registered` and, for older payloads, order -> user from
`order.created`), store the returned `Notification`, and a sender loop applies
`DeliveryPolicy` to each attempt.

Idempotency: a notification's id is derived from (event id, kind) with UUID5, so a
redelivered event produces the *same* id, and the store's insert-if-absent on that id means
redelivery never makes a second notification (nor a second e-mail).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from html import escape
from string import Template
from typing import Any, Final

from emporium.chassis.errors import FieldError, invalid
from emporium.chassis.money import format_money, to_minor
from emporium.contracts.events import (
    InventoryLowV1,
    OrderCompletedV1,
    OrderCreatedV1,
    PaymentStatus,
    UserRegisteredV1,
)

CHANNEL_EMAIL: Final = "email"
DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 100
# `inventory.low` names no person and events carry no admin's user id, so stock alerts go to
# this well-known recipient; every admin's own list includes its notifications.
ADMIN_RECIPIENT_ID: Final = "role:admin"
# Fixed namespace of the UUID5 notification ids: changing it would re-notify on redelivery.
_ID_NAMESPACE: Final = uuid.UUID("6f1d4b0e-4a53-5c2e-9d7a-1f6a0e5b7c21")


class Kind(StrEnum):
    WELCOME = "welcome"
    ORDER_CONFIRMATION = "order_confirmation"
    PAYMENT_RECEIPT = "payment_receipt"
    LOW_STOCK = "low_stock"


class Status(StrEnum):
    PENDING = "PENDING"
    SENT = "SENT"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Recipient:
    """Who a notification is for; `email` is None while the address is not known yet
    (events of different topics are not ordered with each other)."""

    user_id: str
    email: str | None = None
    name: str = ""


@dataclass(frozen=True)
class Notification:
    """One message to one recipient, with its delivery state."""

    id: str
    event_id: str
    user_id: str
    email: str | None
    channel: str
    kind: Kind
    subject: str
    body_text: str
    body_html: str
    created_at: datetime
    status: Status = Status.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    reference: str = ""  # order id, sku...: what the message is about

    @property
    def deliverable(self) -> bool:
        return self.status is Status.PENDING and self.email is not None


def admin_recipient(email: str | None) -> Recipient:
    """The operators' recipient of stock alerts (`email` is the configured admin address)."""
    return Recipient(ADMIN_RECIPIENT_ID, email or None, "admin")


def visible_recipients(owner_id: str, caller_id: str, caller_is_admin: bool) -> list[str]:
    """Whose notifications a list of `owner_id`'s shows: an admin listing its own also sees
    the operators' alerts; listing someone else's (admins only) shows just theirs."""
    if owner_id == caller_id and caller_is_admin:
        return [owner_id, ADMIN_RECIPIENT_ID]
    return [owner_id]


def notification_id(event_id: str, kind: Kind | str) -> str:
    """The id of the notification of `kind` caused by event `event_id`: the same inputs
    always give the same id, which is what makes redelivery harmless."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{event_id}:{Kind(kind).value}"))


# -- templates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageTemplate:
    """Subject and bodies as `string.Template`s: `$name` placeholders, nothing executable."""

    subject: str
    text: str
    html: str

    def render(self, values: Mapping[str, str]) -> tuple[str, str, str]:
        """(subject, text body, HTML body); values are HTML-escaped in the HTML body only."""
        html_values = {k: escape(v) for k, v in values.items()}
        return (
            Template(self.subject).substitute(values),
            Template(self.text).substitute(values),
            Template(self.html).substitute(html_values),
        )


TEMPLATES: Final[Mapping[Kind, MessageTemplate]] = {
    Kind.WELCOME: MessageTemplate(
        subject="Welcome to Emporium, $name",
        text="Hello $name,\n\nyour Emporium account ($email) is ready. Happy shopping!\n",
        html="<p>Hello $name,</p><p>your Emporium account ($email) is ready. Happy shopping!</p>",
    ),
    Kind.ORDER_CONFIRMATION: MessageTemplate(
        subject="Order $order_id received",
        text="Hello $name,\n\nwe received your order $order_id ($items item(s), "
        "total $total). We will let you know when the payment is through.\n",
        html="<p>Hello $name,</p><p>we received your order <b>$order_id</b> ($items item(s), "
        "total $total).</p>",
    ),
    Kind.PAYMENT_RECEIPT: MessageTemplate(
        subject="Payment receipt for order $order_id",
        text="Hello $name,\n\nwe received your payment of $amount for order $order_id "
        "(payment $payment_id). Thank you!\n",
        html="<p>Hello $name,</p><p>we received your payment of <b>$amount</b> for order "
        "$order_id (payment $payment_id). Thank you!</p>",
    ),
    Kind.LOW_STOCK: MessageTemplate(
        subject="Low stock: $sku",
        text="Stock of $sku is low: $available available (threshold $threshold).\n",
        html="<p>Stock of <b>$sku</b> is low: $available available (threshold $threshold).</p>",
    ),
}


def _build(
    event_id: str,
    kind: Kind,
    recipient: Recipient,
    values: Mapping[str, str],
    now: datetime,
    reference: str,
) -> Notification:
    name = recipient.name or "there"
    subject, text, html = TEMPLATES[kind].render({"name": name, **values})
    return Notification(
        id=notification_id(event_id, kind),
        event_id=event_id,
        user_id=recipient.user_id,
        email=recipient.email,
        channel=CHANNEL_EMAIL,
        kind=kind,
        subject=subject,
        body_text=text,
        body_html=html,
        created_at=_utc(now),
        next_attempt_at=_utc(now),
        reference=reference,
    )


# -- event -> notification rules -------------------------------------------------------------


def welcome(event_id: str, event: UserRegisteredV1, now: datetime) -> Notification:
    """`user.registered` -> `welcome` to the new user (the event carries the address)."""
    recipient = Recipient(event.user_id, event.email, event.name)
    return _build(
        event_id, Kind.WELCOME, recipient, {"email": event.email}, now, reference=event.user_id
    )


def order_confirmation(
    event_id: str, event: OrderCreatedV1, recipient: Recipient, now: datetime
) -> Notification:
    """`order.created` -> `order_confirmation` to the buyer."""
    total = format_money(to_minor(event.total, event.currency), event.currency)
    items = str(sum(line.quantity for line in event.lines))
    values = {"order_id": event.order_id, "total": total, "items": items}
    return _build(
        event_id, Kind.ORDER_CONFIRMATION, recipient, values, now, reference=event.order_id
    )


def payment_receipt(
    event_id: str, event: OrderCompletedV1, recipient: Recipient, now: datetime
) -> Notification | None:
    """`order.completed` -> `payment_receipt`, only when the payment was captured; a
    declined payment makes no receipt (the order ends CANCELLED)."""
    if event.status is not PaymentStatus.CAPTURED:
        return None
    amount = format_money(to_minor(event.amount, event.currency), event.currency)
    values = {"order_id": event.order_id, "amount": amount, "payment_id": event.payment_id}
    return _build(event_id, Kind.PAYMENT_RECEIPT, recipient, values, now, reference=event.order_id)


def low_stock_alert(
    event_id: str, event: InventoryLowV1, admin: Recipient, now: datetime
) -> Notification:
    """`inventory.low` -> a `low_stock` alert to the operators' recipient (configured)."""
    values = {
        "sku": event.sku,
        "available": str(event.available),
        "threshold": str(event.threshold),
    }
    return _build(event_id, Kind.LOW_STOCK, admin, values, now, reference=event.sku)


# -- delivery --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryPolicy:
    """Exponential backoff between attempts, giving up after `max_attempts`.

    Attempt n (1-based) that fails waits `base_delay * factor**(n-1)`, capped at
    `max_delay`, stretched by `jitter` (a fraction in [0, 1) the caller draws at random,
    so many failures at once do not retry in lockstep; 0 keeps it deterministic).
    """

    max_attempts: int = 5
    base_delay: timedelta = timedelta(seconds=2)
    factor: float = 2.0
    max_delay: timedelta = timedelta(minutes=5)

    def delay(self, attempt: int, jitter: float = 0.0) -> timedelta:
        raw = self.base_delay * (self.factor ** max(attempt - 1, 0))
        capped = min(raw, self.max_delay)
        return capped * (1.0 + min(max(jitter, 0.0), 0.999))

    def sent(self, notification: Notification, now: datetime) -> Notification:
        """The notification after a successful attempt."""
        return replace(
            notification,
            status=Status.SENT,
            attempts=notification.attempts + 1,
            next_attempt_at=None,
            last_error=None,
        )

    def failed(
        self, notification: Notification, error: str, now: datetime, jitter: float = 0.0
    ) -> Notification:
        """The notification after a failed attempt: retried later, or FAILED for good once
        `max_attempts` attempts were made."""
        attempts = notification.attempts + 1
        if attempts >= self.max_attempts:
            return replace(
                notification,
                status=Status.FAILED,
                attempts=attempts,
                next_attempt_at=None,
                last_error=error,
            )
        return replace(
            notification,
            status=Status.PENDING,
            attempts=attempts,
            next_attempt_at=_utc(now) + self.delay(attempts, jitter),
            last_error=error,
        )

    def due(self, notification: Notification, now: datetime) -> bool:
        """Whether the sender should attempt `notification` now."""
        return (
            notification.deliverable
            and notification.next_attempt_at is not None
            and notification.next_attempt_at <= _utc(now)
        )


# -- API shapes and paging -------------------------------------------------------------------


def list_item(notification: Notification) -> dict[str, Any]:
    """The API's list item `{id, channel, kind, status, subject, created_at}`."""
    return {
        "id": notification.id,
        "channel": notification.channel,
        "kind": notification.kind.value,
        "status": notification.status.value,
        "subject": notification.subject,
        "created_at": rfc3339(notification.created_at),
    }


def to_document(notification: Notification) -> dict[str, Any]:
    """The stored form (documents port): plain JSON-able values, `_id` is the id."""
    return {
        "_id": notification.id,
        "event_id": notification.event_id,
        "user_id": notification.user_id,
        "email": notification.email,
        "channel": notification.channel,
        "kind": notification.kind.value,
        "status": notification.status.value,
        "subject": notification.subject,
        "body_text": notification.body_text,
        "body_html": notification.body_html,
        "created_at": rfc3339(notification.created_at),
        "attempts": notification.attempts,
        "next_attempt_at": (
            rfc3339(notification.next_attempt_at) if notification.next_attempt_at else None
        ),
        "last_error": notification.last_error,
        "reference": notification.reference,
    }


def from_document(doc: Mapping[str, Any]) -> Notification:
    """The notification a stored document describes (inverse of `to_document`)."""
    next_at = doc.get("next_attempt_at")
    return Notification(
        id=str(doc["_id"]),
        event_id=str(doc["event_id"]),
        user_id=str(doc["user_id"]),
        email=doc.get("email"),
        channel=str(doc["channel"]),
        kind=Kind(doc["kind"]),
        subject=str(doc["subject"]),
        body_text=str(doc["body_text"]),
        body_html=str(doc["body_html"]),
        created_at=parse_rfc3339(str(doc["created_at"])),
        status=Status(doc["status"]),
        attempts=int(doc.get("attempts", 0)),
        next_attempt_at=parse_rfc3339(str(next_at)) if next_at else None,
        last_error=doc.get("last_error"),
        reference=str(doc.get("reference", "")),
    )


@dataclass(frozen=True)
class ListPosition:
    """Keyset position of a newest-first list: after (created_at, id), exclusive."""

    created_at: datetime
    id: str = field(default="")


def parse_limit(raw: str | None) -> int:
    """`limit`: default 20, an integer in 1..100; 400 naming `limit` otherwise."""
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        raise invalid("invalid limit", FieldError("limit", f"an integer between 1 and {MAX_LIMIT}"))
    return value


def encode_cursor(last: Notification) -> str:
    """The cursor after `last` (the final item of a page)."""
    raw = json.dumps([rfc3339(last.created_at), last.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> ListPosition | None:
    """Where a page starts (None for the first page); 400 naming `cursor` if malformed."""
    if not cursor:
        return None
    try:
        body = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        created, last_id = body
        return ListPosition(parse_rfc3339(str(created)), str(last_id))
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        raise invalid(
            "invalid cursor", FieldError("cursor", "not a cursor from this list")
        ) from None


def page(items: list[Notification], limit: int) -> dict[str, Any]:
    """`{items, next_cursor}` from up to `limit + 1` newest-first notifications (the extra
    one only tells whether another page exists)."""
    shown = items[:limit]
    more = len(items) > limit and bool(shown)
    return {
        "items": [list_item(n) for n in shown],
        "next_cursor": encode_cursor(shown[-1]) if more else None,
    }


def rfc3339(moment: datetime) -> str:
    return _utc(moment).isoformat().replace("+00:00", "Z")


def parse_rfc3339(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return _utc(moment)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
