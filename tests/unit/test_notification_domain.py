"""Notification rules (pure): event -> message, rendering, deterministic ids, the retry rule
and the API's list shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from emporium.chassis.errors import DomainError
from emporium.chassis.money import format_money
from emporium.contracts.events import (
    InventoryLowV1,
    OrderCompletedV1,
    OrderCreatedV1,
    OrderLineV1,
    PaymentStatus,
    UserRegisteredV1,
)
from emporium.services.notification.domain import (
    ADMIN_RECIPIENT_ID,
    CHANNEL_EMAIL,
    DeliveryPolicy,
    Kind,
    Notification,
    Recipient,
    Status,
    admin_recipient,
    decode_cursor,
    encode_cursor,
    from_document,
    list_item,
    low_stock_alert,
    notification_id,
    order_confirmation,
    page,
    parse_limit,
    payment_receipt,
    to_document,
    visible_recipients,
    welcome,
)

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
ALICE = Recipient("u1", "alice@example.com", "Alice")


def registered() -> UserRegisteredV1:
    return UserRegisteredV1(
        user_id="u1", email="alice@example.com", name="Alice", registered_at=NOW
    )


def created() -> OrderCreatedV1:
    return OrderCreatedV1(
        order_id="o1",
        user_id="u1",
        lines=[
            OrderLineV1(sku="A", quantity=2, unit_price=Decimal("5.00")),
            OrderLineV1(sku="B", quantity=1, unit_price=Decimal("1234.56")),
        ],
        total=Decimal("1244.56"),
        currency="USD",
    )


def completed(status: PaymentStatus = PaymentStatus.CAPTURED) -> OrderCompletedV1:
    return OrderCompletedV1(
        order_id="o1", payment_id="pay1", amount=Decimal("1244.56"), currency="USD", status=status
    )


# -- rules -----------------------------------------------------------------------------------


def test_user_registered_makes_a_welcome() -> None:
    n = welcome("e1", registered(), NOW)
    assert n.kind is Kind.WELCOME
    assert (n.user_id, n.email, n.channel) == ("u1", "alice@example.com", CHANNEL_EMAIL)
    assert n.status is Status.PENDING
    assert n.attempts == 0
    assert n.subject == "Welcome to Emporium, Alice"
    assert "alice@example.com" in n.body_text
    assert n.created_at == NOW
    assert n.next_attempt_at == NOW
    assert n.event_id == "e1"


def test_order_created_makes_an_order_confirmation_with_total() -> None:
    n = order_confirmation("e2", created(), ALICE, NOW)
    assert n.kind is Kind.ORDER_CONFIRMATION
    assert n.subject == "Order o1 received"
    assert "1,244.56 USD" in n.body_text
    assert "3 item(s)" in n.body_text
    assert n.reference == "o1"


def test_captured_payment_makes_a_receipt() -> None:
    n = payment_receipt("e3", completed(), ALICE, NOW)
    assert n is not None
    assert n.kind is Kind.PAYMENT_RECEIPT
    assert n.subject == "Payment receipt for order o1"
    assert "1,244.56 USD" in n.body_text
    assert "pay1" in n.body_text


def test_declined_payment_makes_no_receipt() -> None:
    assert payment_receipt("e3", completed(PaymentStatus.DECLINED), ALICE, NOW) is None


def test_inventory_low_alerts_the_admin_recipient() -> None:
    admin = Recipient("admin", "ops@emporium.local", "Ops")
    n = low_stock_alert("e4", InventoryLowV1(sku="SKU-1", available=2, threshold=5), admin, NOW)
    assert n.kind is Kind.LOW_STOCK
    assert n.user_id == "admin"
    assert n.email == "ops@emporium.local"
    assert n.subject == "Low stock: SKU-1"
    assert "2 available (threshold 5)" in n.body_text


def test_missing_name_and_address_still_make_a_listed_notification() -> None:
    n = order_confirmation("e2", created(), Recipient("u9"), NOW)
    assert n.email is None
    assert not n.deliverable
    assert n.body_text.startswith("Hello there,")


def test_html_body_escapes_values_but_text_body_keeps_them() -> None:
    event = UserRegisteredV1(
        user_id="u2", email="x@example.com", name="<script>Bob</script>", registered_at=NOW
    )
    n = welcome("e5", event, NOW)
    assert "<script>" not in n.body_html
    assert "&lt;script&gt;Bob&lt;/script&gt;" in n.body_html
    assert "<script>Bob</script>" in n.body_text
    assert n.body_html.startswith("<p>")


def test_dollar_signs_in_values_are_not_template_syntax() -> None:
    event = UserRegisteredV1(user_id="u3", email="a@b.c", name="$name ${x}", registered_at=NOW)
    assert welcome("e6", event, NOW).subject == "Welcome to Emporium, $name ${x}"


# -- ids -------------------------------------------------------------------------------------


def test_ids_are_deterministic_per_event_and_kind() -> None:
    assert notification_id("e1", Kind.WELCOME) == notification_id("e1", "welcome")
    assert notification_id("e1", Kind.WELCOME) != notification_id("e2", Kind.WELCOME)
    assert notification_id("e1", Kind.WELCOME) != notification_id("e1", Kind.LOW_STOCK)
    assert welcome("e1", registered(), NOW).id == welcome("e1", registered(), NOW).id


def test_redelivery_later_yields_the_same_notification_id() -> None:
    first = order_confirmation("e2", created(), ALICE, NOW)
    again = order_confirmation("e2", created(), ALICE, NOW + timedelta(hours=1))
    assert first.id == again.id


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError):
        notification_id("e1", "sms_blast")


# -- money -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (1999, "USD", "19.99 USD"),
        (5, "EUR", "0.05 EUR"),
        (123456789, "USD", "1,234,567.89 USD"),
        (1500, "JPY", "1,500 JPY"),
        (1234, "KWD", "1.234 KWD"),
        (0, "usd", "0.00 USD"),
    ],
)
def test_format_money(minor: int, currency: str, text: str) -> None:
    assert format_money(minor, currency) == text


# -- delivery --------------------------------------------------------------------------------


def test_success_marks_sent() -> None:
    policy = DeliveryPolicy()
    n = policy.sent(welcome("e1", registered(), NOW), NOW)
    assert n.status is Status.SENT
    assert n.attempts == 1
    assert n.next_attempt_at is None
    assert n.last_error is None
    assert not policy.due(n, NOW + timedelta(days=1))


def test_failures_back_off_exponentially_then_give_up() -> None:
    policy = DeliveryPolicy(max_attempts=4, base_delay=timedelta(seconds=2), factor=2.0)
    n = welcome("e1", registered(), NOW)
    waits = []
    for _ in range(3):
        n = policy.failed(n, "smtp 451", NOW)
        assert n.status is Status.PENDING
        assert n.last_error == "smtp 451"
        assert n.next_attempt_at is not None
        waits.append(n.next_attempt_at - NOW)
    assert waits == [timedelta(seconds=2), timedelta(seconds=4), timedelta(seconds=8)]
    n = policy.failed(n, "smtp 550", NOW)
    assert n.status is Status.FAILED
    assert n.attempts == 4
    assert n.next_attempt_at is None
    assert n.last_error == "smtp 550"
    assert not policy.due(n, NOW + timedelta(days=1))


def test_delay_is_capped_and_jitter_only_stretches_it() -> None:
    policy = DeliveryPolicy(base_delay=timedelta(seconds=10), max_delay=timedelta(seconds=60))
    assert policy.delay(10) == timedelta(seconds=60)
    assert policy.delay(1, jitter=0.5) == timedelta(seconds=15)
    assert policy.delay(1, jitter=5.0) < timedelta(seconds=20)
    assert policy.delay(1, jitter=-1.0) == timedelta(seconds=10)


def test_due_only_when_pending_addressed_and_time_has_come() -> None:
    policy = DeliveryPolicy()
    n = policy.failed(welcome("e1", registered(), NOW), "x", NOW)
    assert not policy.due(n, NOW)
    assert policy.due(n, NOW + timedelta(seconds=2))
    unaddressed = order_confirmation("e2", created(), Recipient("u9"), NOW)
    assert not policy.due(unaddressed, NOW + timedelta(days=1))


# -- API shapes ------------------------------------------------------------------------------


def test_list_item_has_exactly_the_api_fields() -> None:
    n = welcome("e1", registered(), NOW)
    assert list_item(n) == {
        "id": n.id,
        "channel": "email",
        "kind": "welcome",
        "status": "PENDING",
        "subject": "Welcome to Emporium, Alice",
        "created_at": "2025-01-02T03:04:05Z",
    }


def test_document_round_trip() -> None:
    n = DeliveryPolicy().failed(order_confirmation("e2", created(), ALICE, NOW), "x", NOW)
    doc = to_document(n)
    assert doc["_id"] == n.id
    assert from_document(doc) == n
    unaddressed = welcome("e9", registered(), NOW)
    assert (
        from_document(to_document(DeliveryPolicy().sent(unaddressed, NOW))).next_attempt_at is None
    )


def _n(i: int) -> Notification:
    return welcome(f"e{i}", registered(), NOW - timedelta(minutes=i))


def test_page_has_cursor_only_when_more_exist() -> None:
    items = [_n(i) for i in range(3)]
    body = page(items, limit=2)
    assert [i["id"] for i in body["items"]] == [items[0].id, items[1].id]
    position = decode_cursor(body["next_cursor"])
    assert position is not None
    assert (position.created_at, position.id) == (items[1].created_at, items[1].id)
    assert page(items[:2], limit=2)["next_cursor"] is None
    assert page([], limit=2) == {"items": [], "next_cursor": None}


def test_cursor_round_trip_and_garbage() -> None:
    n = _n(1)
    position = decode_cursor(encode_cursor(n))
    assert position is not None
    assert position.id == n.id
    assert decode_cursor(None) is None
    with pytest.raises(DomainError) as caught:
        decode_cursor("%%%")
    assert caught.value.fields[0].field == "cursor"


@pytest.mark.parametrize("raw", ["0", "101", "x"])
def test_bad_limit_names_limit(raw: str) -> None:
    with pytest.raises(DomainError) as caught:
        parse_limit(raw)
    assert caught.value.http_status == 400
    assert caught.value.fields[0].field == "limit"


def test_limit_default_and_max() -> None:
    assert parse_limit(None) == 20
    assert parse_limit("100") == 100


def test_stock_alerts_go_to_the_operators_recipient() -> None:
    admin = admin_recipient("ops@example.com")
    assert (admin.user_id, admin.email) == (ADMIN_RECIPIENT_ID, "ops@example.com")
    assert admin_recipient("").email is None  # no address configured: listed, never sent
    alert = low_stock_alert("e1", InventoryLowV1(sku="A", available=1, threshold=2), admin, NOW)
    assert alert.user_id == ADMIN_RECIPIENT_ID


def test_an_admin_sees_the_operators_alerts_in_its_own_list_only() -> None:
    assert visible_recipients("u1", "u1", caller_is_admin=False) == ["u1"]
    assert visible_recipients("a1", "a1", caller_is_admin=True) == ["a1", ADMIN_RECIPIENT_ID]
    assert visible_recipients("u1", "a1", caller_is_admin=True) == ["u1"]
