"""notification-service end to end inside one process: real CloudEvents published on a real
embedded bus, applied by the real consumer into the documents store (SQLite, and a real
MongoDB-wire server), e-mailed by the real `.eml` sender, and listed over a real gRPC server
with caller identity (authorization and error mapping included)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import grpc
import pytest

from emporium.chassis.bus.base import EventBus
from emporium.chassis.bus.factory import open_bus
from emporium.chassis.documents.base import DocumentStore
from emporium.chassis.documents.factory import open_documents
from emporium.chassis.events.consumer import EventConsumer
from emporium.chassis.events.envelope import Event, to_message
from emporium.chassis.rpc.client import create_channel, domain_error_from_rpc
from emporium.chassis.rpc.identity import Caller
from emporium.chassis.rpc.server import create_server
from emporium.contracts.events import (
    InventoryLowV1,
    OrderCompletedV1,
    OrderCreatedV1,
    PaymentStatus,
    UserRegisteredV1,
)
from emporium.contracts.events.base import EventModel
from emporium.contracts.events.order_created import OrderLineV1
from emporium.contracts.events.registry import encode
from emporium.contracts.rpc.notification.v1 import notification_pb2, notification_pb2_grpc
from emporium.services.notification.consumers import notification_consumer
from emporium.services.notification.domain import ADMIN_RECIPIENT_ID, DeliveryPolicy, Notification
from emporium.services.notification.handlers import deliver_due
from emporium.services.notification.mailer import DirectoryEmailSender
from emporium.services.notification.rpc import NotificationServicer
from emporium.services.notification.store import NotificationStore
from tests.backends import backend_url

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ADMIN_EMAIL = "ops@emporium.test"
ADA = Caller("u-ada", frozenset({"customer"}))
BOB = Caller("u-bob", frozenset({"customer"}))
ADMIN = Caller("u-admin", frozenset({"admin"}))


def cloud_event(model: EventModel, at: datetime, event_id: str | None = None) -> Event:
    """A CloudEvent as a producer's relay would publish it (no outbox needed here)."""
    _, event_type, subject, data = encode(model)
    event = Event(source="/emporium/test", type=event_type, subject=subject, data=data, time=at)
    return event if event_id is None else replace(event, id=event_id)


def registered(user: str, email: str, name: str) -> UserRegisteredV1:
    return UserRegisteredV1(user_id=user, email=email, name=name, registered_at=T0)


def order_created(order: str, user: str) -> OrderCreatedV1:
    lines = [OrderLineV1(sku="HP-1", quantity=2, unit_price=Decimal("59.99"), product_id="p1")]
    return OrderCreatedV1(
        order_id=order, user_id=user, lines=lines, total=Decimal("119.98"), currency="USD"
    )


def order_completed(order: str, status: PaymentStatus, user: str | None) -> OrderCompletedV1:
    return OrderCompletedV1(
        order_id=order,
        payment_id=f"pay-{order}",
        amount=Decimal("119.98"),
        currency="USD",
        status=status,
        user_id=user,
    )


@dataclass
class NotificationWorld:
    bus: EventBus
    consumer: EventConsumer
    store: NotificationStore
    port: int
    outbox: Path
    channels: list[Any] = field(default_factory=list)

    async def publish(self, *events: tuple[EventModel, Event]) -> None:
        await self.bus.publish([to_message(model.TOPIC, event) for model, event in events])
        await self.drain(len(events))

    async def drain(self, expected: int) -> None:
        """Run the consumer until `expected` deliveries were handled (bounded, never a sleep)."""
        handled, deadline = 0, time.monotonic() + 15
        while handled < expected and time.monotonic() < deadline:
            handled += await self.consumer.poll_once()
        assert handled == expected

    async def event(
        self, model: EventModel, at: datetime = T0, event_id: str | None = None
    ) -> Event:
        event = cloud_event(model, at, event_id)
        await self.publish((model, event))
        return event

    def stub(self, caller: Caller) -> notification_pb2_grpc.NotificationServiceStub:
        channel = create_channel(f"127.0.0.1:{self.port}", service="test", caller=caller)
        self.channels.append(channel)
        return notification_pb2_grpc.NotificationServiceStub(channel)

    async def list(
        self, caller: Caller, **fields: Any
    ) -> notification_pb2.ListNotificationsResponse:
        response: notification_pb2.ListNotificationsResponse = await self.stub(
            caller
        ).ListNotifications(notification_pb2.ListNotificationsRequest(**fields))
        return response

    async def kinds(self, caller: Caller, **fields: Any) -> list[str]:
        return [n.kind for n in (await self.list(caller, **fields)).items]

    async def deliver(self, now: datetime, sender: Any = None, rules: Any = None) -> int:
        return await deliver_due(
            self.store,
            sender or DirectoryEmailSender(self.outbox),
            rules or DeliveryPolicy(),
            now,
            jitter=lambda: 0.0,
        )


def mongodb_url_with_fresh_database() -> str:
    """The test server's URL naming a database of its own (the server is shared)."""
    parts = urlsplit(backend_url("mongodb"))
    return urlunsplit(parts._replace(path=f"/notif_{uuid.uuid4().hex[:12]}"))


@pytest.fixture(params=["sqlite", "mongodb"], ids=["sqlite", "mongodb"])
async def documents(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DocumentStore]:
    if request.param == "sqlite":
        store = open_documents(f"sqlite://{tmp_path}/notification-documents.sqlite3")
    else:
        store = open_documents(mongodb_url_with_fresh_database())
    await store.ping()
    yield store
    await store.close()


@pytest.fixture
async def world(documents: DocumentStore, tmp_path: Path) -> AsyncIterator[NotificationWorld]:
    bus = open_bus(f"embedded://{tmp_path}/bus.sqlite3", client_id="test-notification")
    await bus.start()
    store = NotificationStore(documents)
    consumer = notification_consumer(bus, "notification", store, ADMIN_EMAIL)
    await consumer.start()
    server = create_server("notification")
    notification_pb2_grpc.add_NotificationServiceServicer_to_server(
        NotificationServicer(store), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    world = NotificationWorld(bus, consumer, store, port, tmp_path / "outbox-mail")
    try:
        yield world
    finally:
        for channel in world.channels:
            await channel.close()
        await server.stop(None)
        await consumer.close()
        await bus.close()


async def rpc_error(call: Any) -> Any:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_registration_makes_a_welcome_that_the_sender_emails(
    world: NotificationWorld,
) -> None:
    await world.event(registered(ADA.user_id, "ada@example.com", "Ada"))
    (item,) = (await world.list(ADA)).items
    assert (item.kind, item.channel, item.status) == ("welcome", "email", "PENDING")
    assert item.subject == "Welcome to Emporium, Ada"
    assert item.created_at.ToDatetime(tzinfo=UTC) == T0

    assert await world.deliver(T0 + timedelta(seconds=1)) == 1
    (item,) = (await world.list(ADA)).items
    assert item.status == "SENT"
    mail = message_from_bytes((world.outbox / f"{item.id}.eml").read_bytes(), policy=policy.default)
    assert mail["To"] == "ada@example.com"
    assert mail["Subject"] == "Welcome to Emporium, Ada"
    assert "ada@example.com" in mail.get_body(("plain",)).get_content()
    assert await world.deliver(T0 + timedelta(seconds=2)) == 0  # SENT is never sent again


async def test_order_confirmation_then_payment_receipt_newest_first(
    world: NotificationWorld,
) -> None:
    await world.event(registered(ADA.user_id, "ada@example.com", "Ada"))
    await world.event(order_created("o-1", ADA.user_id), T0 + timedelta(minutes=1))
    # an older payload without user_id: the buyer comes from the order.created seen before
    await world.event(
        order_completed("o-1", PaymentStatus.CAPTURED, None), T0 + timedelta(minutes=2)
    )
    page = await world.list(ADA)
    assert [n.kind for n in page.items] == ["payment_receipt", "order_confirmation", "welcome"]
    receipt, confirmation, _ = page.items
    assert receipt.subject == "Payment receipt for order o-1"
    assert confirmation.subject == "Order o-1 received"
    assert page.next_cursor == ""


async def test_a_declined_payment_sends_no_receipt(world: NotificationWorld) -> None:
    await world.event(order_created("o-2", ADA.user_id))
    await world.event(
        order_completed("o-2", PaymentStatus.DECLINED, ADA.user_id), T0 + timedelta(minutes=1)
    )
    assert await world.kinds(ADA) == ["order_confirmation"]


async def test_low_stock_alerts_go_to_admins_only(world: NotificationWorld) -> None:
    await world.event(InventoryLowV1(sku="HP-1", available=2, threshold=5))
    (alert,) = (await world.list(ADMIN)).items
    assert (alert.kind, alert.subject) == ("low_stock", "Low stock: HP-1")
    assert await world.kinds(ADA) == []
    # delivered to the configured operators' address
    assert await world.deliver(T0 + timedelta(seconds=1)) == 1
    mail = message_from_bytes((world.outbox / f"{alert.id}.eml").read_bytes())
    assert mail["To"] == ADMIN_EMAIL
    # the admin's own notifications are listed with the alerts
    await world.event(registered(ADMIN.user_id, "admin@example.com", "Admin"))
    assert sorted(await world.kinds(ADMIN)) == ["low_stock", "welcome"]


async def test_redelivery_makes_no_second_notification(world: NotificationWorld) -> None:
    model = order_created("o-3", ADA.user_id)
    first = await world.event(model)
    await world.event(model, event_id=first.id)  # the same CloudEvent again
    await world.event(model, event_id=first.id)
    assert await world.kinds(ADA) == ["order_confirmation"]
    assert await world.deliver(T0 + timedelta(seconds=1)) == 0  # no address yet: kept


async def test_others_see_nothing_of_yours(world: NotificationWorld) -> None:
    await world.event(registered(ADA.user_id, "ada@example.com", "Ada"))
    await world.event(order_created("o-4", ADA.user_id))
    assert await world.kinds(BOB) == []
    error = await rpc_error(world.list(BOB, user_id=ADA.user_id))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = await rpc_error(world.list(BOB, user_id=ADMIN_RECIPIENT_ID))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = await rpc_error(world.list(Caller.anonymous()))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    # an admin may look at a user's list by naming them
    assert sorted(await world.kinds(ADMIN, user_id=ADA.user_id)) == [
        "order_confirmation",
        "welcome",
    ]


async def test_pages_follow_the_cursor_without_gaps_or_repeats(world: NotificationWorld) -> None:
    for i in range(5):  # five orders, one minute apart (plus a same-time pair for ties)
        await world.event(order_created(f"o-p{i}", ADA.user_id), T0 + timedelta(minutes=i // 2))
    seen: list[str] = []
    cursor = ""
    for _ in range(5):
        page = await world.list(ADA, limit=2, cursor=cursor)
        seen.extend(n.subject for n in page.items)
        cursor = page.next_cursor
        if not cursor:
            break
    assert sorted(seen) == sorted(f"Order o-p{i} received" for i in range(5))
    assert len(seen) == 5
    error = await rpc_error(world.list(ADA, cursor="not-a-cursor"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f.field for f in domain_error_from_rpc(error).fields] == ["cursor"]
    error = await rpc_error(world.list(ADA, limit=101))
    assert [f.field for f in domain_error_from_rpc(error).fields] == ["limit"]


async def test_a_notification_waits_for_its_address_then_is_sent(
    world: NotificationWorld,
) -> None:
    await world.event(order_created("o-5", ADA.user_id))  # before user.registered arrives
    assert await world.deliver(T0 + timedelta(seconds=1)) == 0
    await world.event(registered(ADA.user_id, "ada@example.com", "Ada"), T0 + timedelta(minutes=1))
    assert await world.deliver(T0 + timedelta(minutes=2)) == 2
    assert {n.status for n in (await world.list(ADA)).items} == {"SENT"}


class BrokenMailServer:
    """An e-mail sender whose every attempt fails, to drive the retry policy."""

    def __init__(self) -> None:
        self.attempts = 0

    async def send(self, notification: Notification) -> None:
        self.attempts += 1
        raise ConnectionRefusedError("mail server down")


async def test_delivery_retries_with_backoff_then_fails(world: NotificationWorld) -> None:
    await world.event(registered(ADA.user_id, "ada@example.com", "Ada"))
    broken, rules = BrokenMailServer(), DeliveryPolicy(max_attempts=3)
    now = T0 + timedelta(seconds=1)
    assert await world.deliver(now, broken, rules) == 1
    assert await world.deliver(now, broken, rules) == 0  # backing off (2 s)
    assert (await world.list(ADA)).items[0].status == "PENDING"
    assert await world.deliver(now + timedelta(seconds=2), broken, rules) == 1
    assert await world.deliver(now + timedelta(seconds=6), broken, rules) == 1
    assert broken.attempts == 3
    (item,) = (await world.list(ADA)).items
    assert item.status == "FAILED"
    assert await world.deliver(now + timedelta(hours=1), broken, rules) == 0
    stored = await world.store.get(item.id)
    assert stored is not None
    assert stored.last_error == "ConnectionRefusedError: mail server down"
