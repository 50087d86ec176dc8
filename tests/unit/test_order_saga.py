# mypy: disable-error-code="comparison-overlap"
"""Order rules and the checkout saga (pure).

The last tests run the saga against the real inventory and payment domain functions in a
simulated, hostile world (lost, duplicated, reordered and late messages, crashes with
recovery, cancellations, reservations expiring mid-flight) and check the promises of
DESIGN.md: every order ends PAID or CANCELLED, each order is charged at most once and keeps
money iff PAID, and stock is never oversold and is released iff the order was cancelled.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from emporium.chassis.errors import DomainError, ErrorCode
from emporium.contracts.events.order_created import OrderCreatedV1
from emporium.services.inventory import domain as inventory
from emporium.services.order.domain import (
    MAX_LINES,
    MAX_QUANTITY,
    CatalogEntry,
    IdempotencyRecord,
    Order,
    OrderStatus,
    PlaceOrder,
    price_order,
    replay_of,
)
from emporium.services.order.saga import (
    Charge,
    CheckoutSaga,
    CommitStock,
    Decision,
    EmitEvent,
    RaiseAlert,
    RecordOrder,
    RefundPayment,
    ReleaseStock,
    RemoteCommand,
    Reply,
    ReserveStock,
    RetryPolicy,
    SagaState,
    StepFailed,
    StepRefused,
    StepSucceeded,
    UpdateOrder,
    VoidPayment,
)
from emporium.services.payment import domain as payment

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
ADDRESS = {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "us"}
CATALOG = {
    "p-head": CatalogEntry("p-head", "HEAD-1", "Headphones", 2499, "USD"),
    "p-cable": CatalogEntry("p-cable", "CABLE-1", "Cable", 999, "USD"),
    "p-mug": CatalogEntry("p-mug", "MUG-1", "Mug", 1500, "USD"),
    "p-euro": CatalogEntry("p-euro", "EURO-1", "Import", 1000, "EUR"),
    "p-gone": CatalogEntry("p-gone", "GONE-1", "Gone", 100, "USD", deleted=True),
    "p-free": CatalogEntry("p-free", "FREE-1", "Sticker", 0, "USD"),
}


def order_body(
    items: object = None, token: object = "tok_visa", **extra: object
) -> dict[str, object]:
    body: dict[str, object] = {
        "items": items if items is not None else [{"product_id": "p-head", "quantity": 2}],
        "payment_token": token,
        "shipping_address": dict(ADDRESS),
    }
    body.update(extra)
    return body


def place(
    items: object = None, token: str = "tok_visa", order_id: str = "o1", key: str = "key-1"
) -> Order:
    command = PlaceOrder.parse("u1", key, order_body(items, token))
    return Order.place(order_id, command, price_order(command, CATALOG), NOW)


def fields_of(error: DomainError) -> list[str]:
    return [f.field for f in error.fields]


# --- PlaceOrder validation ---------------------------------------------------------------


def test_place_order_parses_and_normalises() -> None:
    command = PlaceOrder.parse("u1", "key-1", order_body())
    assert command.items[0].quantity == 2
    assert command.shipping_address.country == "US"
    assert command.payment_token == "tok_visa"


def test_duplicate_products_are_merged() -> None:
    items = [
        {"product_id": "p-head", "quantity": 1},
        {"product_id": "p-cable", "quantity": 1},
        {"product_id": "p-head", "quantity": 2},
    ]
    command = PlaceOrder.parse("u1", "k", order_body(items))
    assert [(i.product_id, i.quantity) for i in command.items] == [("p-head", 3), ("p-cable", 1)]


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([], "items"),
        ("nope", "items"),
        ([{"product_id": "p-head", "quantity": 0}], "items.0.quantity"),
        ([{"product_id": "p-head", "quantity": MAX_QUANTITY + 1}], "items.0.quantity"),
        ([{"product_id": "p-head", "quantity": True}], "items.0.quantity"),
        ([{"product_id": "p-head", "quantity": 1.5}], "items.0.quantity"),
        ([{"product_id": "", "quantity": 1}], "items.0.product_id"),
        ([{"quantity": 1}], "items.0.product_id"),
        (["p-head"], "items.0"),
        (
            [{"product_id": "p-head", "quantity": 60}, {"product_id": "p-head", "quantity": 60}],
            "items.1.quantity",
        ),
        ([{"product_id": f"p{n}", "quantity": 1} for n in range(MAX_LINES + 1)], "items"),
    ],
)
def test_bad_items_are_named(items: object, field: str) -> None:
    with pytest.raises(DomainError) as caught:
        PlaceOrder.parse("u1", "k", order_body(items))
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT
    assert fields_of(caught.value) == [field]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"payment_token": ""}, "payment_token"),
        ({"payment_token": None}, "payment_token"),
        ({"payment_token": "tok visa"}, "payment_token"),
        ({"shipping_address": "somewhere"}, "shipping_address"),
        ({"shipping_address": {**ADDRESS, "city": " "}}, "shipping_address.city"),
        ({"shipping_address": {**ADDRESS, "country": "USA"}}, "shipping_address.country"),
        ({"shipping_address": {**ADDRESS, "line2": 5}}, "shipping_address.line2"),
    ],
)
def test_bad_token_or_address_is_named(change: dict[str, object], field: str) -> None:
    body = order_body()
    body.update(change)
    with pytest.raises(DomainError) as caught:
        PlaceOrder.parse("u1", "k", body)
    assert fields_of(caught.value) == [field]


@pytest.mark.parametrize("key", [None, "", "has space", "x" * 256, "naïve"])
def test_idempotency_key_is_required_and_printable(key: object) -> None:
    with pytest.raises(DomainError) as caught:
        PlaceOrder.parse("u1", key, order_body())
    assert fields_of(caught.value) == ["Idempotency-Key"]


def test_all_problems_are_reported_together() -> None:
    body = order_body([{"product_id": "p-head", "quantity": 0}], token="")
    del body["shipping_address"]
    with pytest.raises(DomainError) as caught:
        PlaceOrder.parse("u1", None, body)
    assert set(fields_of(caught.value)) == {
        "Idempotency-Key",
        "items.0.quantity",
        "payment_token",
        "shipping_address",
    }


# --- idempotency ----------------------------------------------------------------------------


def test_fingerprint_depends_on_meaning_not_spelling() -> None:
    a = PlaceOrder.parse(
        "u1",
        "k",
        order_body(
            [{"product_id": "p-head", "quantity": 1}, {"product_id": "p-mug", "quantity": 1}]
        ),
    )
    b = PlaceOrder.parse(
        "u1",
        "k",
        order_body(
            [{"product_id": "p-mug", "quantity": 1}, {"product_id": "p-head", "quantity": 1}]
        ),
    )
    c = PlaceOrder.parse("u1", "k", order_body(token="tok_chargeDeclined"))
    d = PlaceOrder.parse("u2", "k", order_body())
    assert a.fingerprint() == b.fingerprint()
    assert len({a.fingerprint(), c.fingerprint(), d.fingerprint()}) == 3


def test_same_key_same_body_replays_and_different_body_conflicts() -> None:
    command = PlaceOrder.parse("u1", "k", order_body())
    record = IdempotencyRecord("u1", "k", command.fingerprint(), "o1")
    assert replay_of(None, command) is None
    assert replay_of(record, PlaceOrder.parse("u1", "k", order_body())) == "o1"
    other = PlaceOrder.parse("u1", "k", order_body([{"product_id": "p-head", "quantity": 3}]))
    with pytest.raises(DomainError) as caught:
        replay_of(record, other)
    assert (caught.value.http_status, caught.value.reason) == (409, "idempotency_key_reused")


# --- pricing and the order aggregate --------------------------------------------------------


def test_prices_come_from_the_catalog() -> None:
    items = [{"product_id": "p-head", "quantity": 2}, {"product_id": "p-cable", "quantity": 1}]
    command = PlaceOrder.parse("u1", "k", order_body(items, unit_price_minor=1))
    priced = price_order(command, CATALOG)
    assert [(line.sku, line.unit_price_minor) for line in priced.lines] == [
        ("HEAD-1", 2499),
        ("CABLE-1", 999),
    ]
    assert (priced.total_minor, priced.currency) == (2 * 2499 + 999, "USD")


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([{"product_id": "p-missing", "quantity": 1}], "items.0.product_id"),
        ([{"product_id": "p-gone", "quantity": 1}], "items.0.product_id"),
        (
            [{"product_id": "p-head", "quantity": 1}, {"product_id": "p-euro", "quantity": 1}],
            "items",
        ),
        ([{"product_id": "p-free", "quantity": 1}], "items"),
    ],
)
def test_unpriceable_orders_are_refused(items: object, field: str) -> None:
    command = PlaceOrder.parse("u1", "k", order_body(items))
    with pytest.raises(DomainError) as caught:
        price_order(command, CATALOG)
    assert fields_of(caught.value) == [field]


def test_order_view_and_status_rules() -> None:
    order = place()
    view = order.to_view()
    assert view["status"] == "PENDING"
    assert view["total_minor"] == 4998
    assert view["payment"] == {"status": "PENDING"}
    assert view["items"] == [
        {
            "product_id": "p-head",
            "sku": "HEAD-1",
            "name": "Headphones",
            "quantity": 2,
            "unit_price_minor": 2499,
        }
    ]
    order.mark_paid(NOW)
    order.mark_paid(NOW)  # idempotent
    order.mark_cancelled("cancelled", NOW)
    assert order.status is OrderStatus.CANCELLED
    with pytest.raises(DomainError) as caught:
        order.mark_paid(NOW)
    assert caught.value.reason == "illegal_order_transition"


def test_another_users_order_is_not_found() -> None:
    order = place()
    order.ensure_visible_to("u1", is_admin=False)
    order.ensure_visible_to("admin", is_admin=True)
    with pytest.raises(DomainError) as caught:
        order.ensure_visible_to("u2", is_admin=False)
    assert caught.value.http_status == 404


# --- saga: deterministic scenarios ------------------------------------------------------------


def only(decision: Decision, kind: type[RemoteCommand]) -> RemoteCommand:
    remote = decision.remote
    assert len(remote) == 1, decision
    assert isinstance(remote[0], kind), decision
    return remote[0]


def ok(saga: CheckoutSaga, command: RemoteCommand) -> Decision:
    return saga.handle(StepSucceeded(command.step_id), NOW)


def start(
    token: str = "tok_visa", policy: RetryPolicy | None = None
) -> tuple[CheckoutSaga, ReserveStock]:
    saga, decision = CheckoutSaga.start(place(token=token), token, NOW, policy)
    command = only(decision, ReserveStock)
    assert isinstance(command, ReserveStock)
    return saga, command


def test_happy_checkout() -> None:
    saga, reserve = start()
    assert reserve.lines == (("HEAD-1", 2),)
    assert saga.awaiting == reserve.step_id
    recorded = ok(saga, reserve)
    assert isinstance(recorded.commands[0], RecordOrder)
    event = recorded.commands[1]
    assert isinstance(event, EmitEvent)
    assert (event.topic, event.key, event.payload["total"]) == (
        "order.created",
        "o1",
        Decimal("49.98"),
    )
    charge = only(recorded, Charge)
    assert isinstance(charge, Charge)
    assert (charge.amount_minor, charge.currency, charge.payment_token) == (4998, "USD", "tok_visa")
    commit = only(ok(saga, charge), CommitStock)
    paid = ok(saga, commit)
    assert paid.remote == []
    assert [type(c) for c in paid.local] == [UpdateOrder]
    assert saga.state is SagaState.PAID
    assert saga.order.status is OrderStatus.PAID
    assert saga.order.to_view()["payment"] == {"status": "CAPTURED"}
    assert saga.awaiting is None
    assert saga.version == 3


def test_out_of_stock_cancels_before_anything_is_recorded_or_charged() -> None:
    saga, reserve = start()
    decision = saga.handle(StepRefused(reserve.step_id, "out_of_stock"), NOW)
    assert [type(c) for c in decision.commands] == [UpdateOrder]  # the row says CANCELLED
    assert saga.order.status is OrderStatus.CANCELLED
    assert saga.state is SagaState.CANCELLED
    assert saga.cancel_reason == "out_of_stock"
    assert not saga.order_recorded


def test_declined_payment_releases_stock_and_cancels() -> None:
    saga, reserve = start("tok_chargeDeclinedInsufficientFunds")
    charge = only(ok(saga, reserve), Charge)
    release = only(
        saga.handle(StepRefused(charge.step_id, "insufficient_funds"), NOW), ReleaseStock
    )
    done = ok(saga, release)
    assert [type(c) for c in done.commands] == [UpdateOrder]
    assert saga.state is SagaState.CANCELLED
    assert saga.order.to_view()["payment"] == {"status": "DECLINED", "reason": "insufficient_funds"}
    assert saga.order.status is OrderStatus.CANCELLED


def test_charge_timeouts_void_then_release() -> None:
    saga, reserve = start("tok_timeout")
    first = only(ok(saga, reserve), Charge)
    second = only(saga.handle(StepFailed(first.step_id, "deadline_exceeded"), NOW), Charge)
    assert (second.attempt, second.step_id != first.step_id) == (2, True)
    void = only(saga.handle(StepFailed(second.step_id, "deadline_exceeded"), NOW), VoidPayment)
    assert isinstance(void, VoidPayment)
    assert (void.amount_minor, void.payment_token) == (4998, "tok_timeout")
    release = only(ok(saga, void), ReleaseStock)
    ok(saga, release)
    assert saga.state is SagaState.CANCELLED
    assert saga.order.to_view()["payment"] == {"status": "VOIDED", "reason": "payment_timeout"}


def test_stale_and_duplicate_replies_are_ignored() -> None:
    saga, reserve = start()
    charge = only(ok(saga, reserve), Charge)
    version = saga.version
    for stale in (
        StepSucceeded(reserve.step_id),
        StepRefused(reserve.step_id, "x"),
        StepFailed("bogus", "x"),
    ):
        decision = saga.handle(stale, NOW)
        assert decision.ignored
        assert decision.commands == []
    assert (saga.version, saga.awaiting, saga.state) == (
        version,
        charge.step_id,
        SagaState.CHARGING,
    )


def test_resume_resends_the_awaited_step_under_a_new_id() -> None:
    saga, reserve = start()
    again = only(saga.resume(NOW), ReserveStock)
    assert again.step_id != reserve.step_id
    assert again.attempt == 1  # a restart is not a failure of the other side
    assert saga.handle(StepSucceeded(reserve.step_id), NOW).ignored  # the pre-crash reply
    assert not ok(saga, again).ignored


def test_reserve_that_keeps_failing_releases_then_cancels() -> None:
    saga, first = start()
    command: RemoteCommand = first
    for _ in range(2):
        command = only(saga.handle(StepFailed(command.step_id, "unavailable"), NOW), ReserveStock)
    release = only(saga.handle(StepFailed(command.step_id, "unavailable"), NOW), ReleaseStock)
    assert [type(c) for c in ok(saga, release).commands] == [UpdateOrder]
    assert not saga.order_recorded  # never placed: no order.created went out
    assert (saga.state, saga.cancel_reason) == (SagaState.CANCELLED, "inventory_unavailable")


def test_expired_reservation_at_commit_refunds_instead_of_overselling() -> None:
    saga, reserve = start()
    charge = only(ok(saga, reserve), Charge)
    commit = only(ok(saga, charge), CommitStock)
    refund = only(
        saga.handle(StepRefused(commit.step_id, "reservation_closed"), NOW), RefundPayment
    )
    ok(saga, refund)
    assert saga.state is SagaState.CANCELLED  # nothing left to release
    assert saga.order.to_view()["payment"] == {"status": "REFUNDED"}


def test_failing_compensation_parks_and_the_operator_resumes_it() -> None:
    policy = RetryPolicy(compensation_attempts=3)
    saga, reserve = start("tok_chargeDeclined", policy)
    charge = only(ok(saga, reserve), Charge)
    command = only(saga.handle(StepRefused(charge.step_id, "card_declined"), NOW), ReleaseStock)
    for _ in range(2):
        command = only(saga.handle(StepFailed(command.step_id, "unavailable"), NOW), ReleaseStock)
    parked = saga.handle(StepFailed(command.step_id, "unavailable"), NOW)
    assert saga.state is SagaState.PARKED
    assert [type(c) for c in parked.commands] == [RaiseAlert]
    assert saga.parked_reason == "unavailable (3 attempts)"
    assert saga.resume(NOW).ignored
    assert saga.request_cancel(NOW).ignored
    retry = only(saga.retry_parked(NOW), ReleaseStock)
    ok(saga, retry)
    assert saga.state is SagaState.CANCELLED
    assert saga.retry_parked(NOW).ignored


def test_a_refused_compensation_is_not_taken_for_nothing_to_undo() -> None:
    """A void answered PERMISSION_DENIED (say, during a deploy) is retried, then parked:
    the order is never cancelled with the money possibly kept."""
    policy = RetryPolicy(charge_attempts=1, compensation_attempts=2)
    saga, reserve = start("tok_timeout", policy)
    charge = only(ok(saga, reserve), Charge)
    void = only(saga.handle(StepFailed(charge.step_id, "deadline_exceeded"), NOW), VoidPayment)
    again = only(saga.handle(StepRefused(void.step_id, "permission_denied"), NOW), VoidPayment)
    saga.handle(StepRefused(again.step_id, "permission_denied"), NOW)
    assert saga.state is SagaState.PARKED
    assert saga.order.status is OrderStatus.PENDING  # not CANCELLED: the money is unsettled


def test_an_operator_closes_a_parked_saga_settled_by_hand() -> None:
    policy = RetryPolicy(compensation_attempts=1)
    saga, reserve = start("tok_chargeDeclined", policy)
    charge = only(ok(saga, reserve), Charge)
    release = only(saga.handle(StepRefused(charge.step_id, "card_declined"), NOW), ReleaseStock)
    assert saga.operator_cancel("early", NOW).ignored  # not parked yet
    saga.handle(StepFailed(release.step_id, "unavailable"), NOW)
    assert saga.state is SagaState.PARKED
    closed = saga.operator_cancel("stock counted by hand", NOW)
    assert closed.remote == []
    assert (saga.state, saga.cancel_reason) == (
        SagaState.CANCELLED,
        "operator: stock counted by hand",
    )
    assert saga.order.status is OrderStatus.CANCELLED


def test_cancel_of_a_paid_order_refunds_and_restocks() -> None:
    saga, reserve = start()
    ok(saga, only(ok(saga, only(ok(saga, reserve), Charge)), CommitStock))
    assert saga.state is SagaState.PAID
    refund = only(saga.request_cancel(NOW), RefundPayment)
    assert saga.request_cancel(NOW).ignored  # asked twice
    release = only(ok(saga, refund), ReleaseStock)
    ok(saga, release)
    assert saga.state is SagaState.CANCELLED
    assert saga.order.status is OrderStatus.CANCELLED
    assert saga.order.to_view()["payment"] == {"status": "REFUNDED"}
    assert saga.request_cancel(NOW).ignored  # CANCELLED stays CANCELLED


def test_cancel_while_charging_compensates_at_the_next_reply() -> None:
    saga, reserve = start()
    charge = only(ok(saga, reserve), Charge)
    assert saga.request_cancel(NOW).commands == []
    refund = only(ok(saga, charge), RefundPayment)
    ok(saga, only(ok(saga, refund), ReleaseStock))
    assert (saga.state, saga.cancel_reason) == (SagaState.CANCELLED, "cancelled")


def test_order_completed_event_counts_as_the_charge_reply() -> None:
    saga, reserve = start()
    charge = only(ok(saga, reserve), Charge)
    only(saga.on_payment_completed(True, NOW), CommitStock)
    assert saga.handle(StepSucceeded(charge.step_id), NOW).ignored
    assert saga.on_payment_completed(True, NOW).ignored


def test_order_completed_declined_event_counts_as_a_refusal() -> None:
    saga, reserve = start("tok_chargeDeclined")
    only(ok(saga, reserve), Charge)
    only(saga.on_payment_completed(False, NOW, "card_declined"), ReleaseStock)
    assert saga.order.to_view()["payment"] == {"status": "DECLINED", "reason": "card_declined"}


def test_order_created_payload_matches_the_event_contract() -> None:
    order = place(
        [{"product_id": "p-head", "quantity": 2}, {"product_id": "p-cable", "quantity": 1}]
    )
    event = OrderCreatedV1.model_validate(order.created_event_payload())
    assert event.subject() == "o1"
    assert event.total == Decimal("59.97")
    assert [(line.sku, line.unit_price) for line in event.lines] == [
        ("HEAD-1", Decimal("24.99")),
        ("CABLE-1", Decimal("9.99")),
    ]


# --- saga: property-style simulation -------------------------------------------------------

TOKENS = [
    "tok_visa",
    "tok_visa",
    "tok_visa",
    "tok_chargeDeclined",
    "tok_chargeDeclinedInsufficientFunds",
    "tok_timeout",
    "tok_unknown",
]
TTL = timedelta(minutes=10)


@dataclass
class ProviderBook:
    """The provider's record of one payment key (what `emporium.sandbox` keeps)."""

    token: str
    status: str | None = None  # None: never received
    captures: int = 0
    net: int = 0

    def charge(self) -> payment.ProviderAnswer:
        if self.status is None:
            if self.token == "tok_unknown":
                return payment.ProviderAnswer(payment.ProviderStatus.DECLINED, "unknown_token")
            self.status = {
                "tok_visa": "captured",
                "tok_timeout": "processing",
            }.get(self.token, "declined")
            if self.status == "captured":
                self.captures, self.net = self.captures + 1, self.net + 1
        return payment.ProviderAnswer(payment.ProviderStatus(self.status))

    def complete(self) -> None:
        if self.status == "processing":
            self.status, self.captures, self.net = "captured", self.captures + 1, self.net + 1

    def void(self) -> payment.ProviderAnswer:
        if self.status in (None, "processing"):
            self.status = "voided"
        elif self.status == "captured":
            self.status, self.net = "voided", self.net - 1
        return payment.ProviderAnswer(payment.ProviderStatus(self.status))

    def refund(self) -> payment.ProviderAnswer:
        if self.status == "captured":
            self.status, self.net = "refunded", self.net - 1
        return payment.ProviderAnswer(payment.ProviderStatus(self.status or "voided"))


@dataclass
class World:
    """Inventory and payment services (their real domain code) plus an unreliable network."""

    rng: random.Random
    fault_rate: float
    now: datetime = NOW
    stock: dict[str, inventory.StockItem] = field(default_factory=dict)
    received: dict[str, int] = field(default_factory=dict)
    reservations: dict[str, inventory.Reservation] = field(default_factory=dict)
    payments: dict[str, payment.Payment] = field(default_factory=dict)
    books: dict[str, ProviderBook] = field(default_factory=dict)  # the provider, per key
    completed_events: list[payment.PaymentCompleted] = field(default_factory=list)
    sagas: dict[str, CheckoutSaga] = field(default_factory=dict)
    inflight: list[tuple[str, RemoteCommand]] = field(default_factory=list)
    replies: list[tuple[str, Reply]] = field(default_factory=list)
    recorded: set[str] = field(default_factory=set)
    late_reservations: set[str] = field(default_factory=set)
    alerts: int = 0

    # -- the services --

    def execute(self, command: RemoteCommand) -> Reply:
        order_id = command.order_id
        try:
            if isinstance(command, ReserveStock):
                change = inventory.reserve(
                    self.stock,
                    order_id,
                    command.lines,
                    self.now,
                    self.reservations.get(order_id),
                    TTL,
                )
                self.reservations[order_id] = change.reservation
                if change.created and self.sagas[order_id].is_finished:
                    self.late_reservations.add(order_id)  # a stale duplicate request
            elif isinstance(command, ReleaseStock):
                existing = self.reservations.get(order_id)
                change = inventory.release_order(self.stock, order_id, existing, self.now)
                self.reservations[order_id] = change.reservation
            elif isinstance(command, CommitStock):
                existing = self.reservations.get(order_id)
                if existing is None:
                    return StepRefused(command.step_id, "no_reservation")
                inventory.commit(self.stock, existing, self.now)
            elif isinstance(command, Charge):
                return self.charge(command)
            elif isinstance(command, VoidPayment):
                return self.void(command)
            else:
                return self.refund(command)
        except DomainError as error:
            if error.code not in (ErrorCode.CONFLICT, ErrorCode.INVALID_ARGUMENT):
                raise
            return StepRefused(command.step_id, error.reason)
        return StepSucceeded(command.step_id)

    def ask_provider(self, paid: payment.Payment, fresh: bool = False) -> None:
        """payment-service calls the provider for the open intent; the answer may be lost
        (the intent stays, the reconciler asks again later)."""
        call = paid.open_call()
        if call is None:
            return
        book = self.books.setdefault(paid.id, ProviderBook(paid.token))
        got = {
            payment.ProviderCall.RESOLVE: book.charge,
            payment.ProviderCall.VOID: book.void,
            payment.ProviderCall.REFUND: book.refund,
        }[call]()
        if self.rng.random() < 0.2 and not fresh:
            return  # no answer reached payment-service
        self.completed_events += paid.apply_answer(got, self.now)

    def charge(self, command: Charge) -> Reply:
        request = payment.ChargeRequest(
            command.order_id, command.amount_minor, command.currency, command.payment_token
        )
        existing = self.payments.get(command.order_id)
        paid, call = payment.start_charge(request, existing, f"pay_{command.order_id}", self.now)
        self.payments[command.order_id] = paid
        if call:
            self.ask_provider(paid)
        status = paid.status
        if status is payment.PaymentStatus.CAPTURED:
            return StepSucceeded(command.step_id)
        if status in payment.NOTHING_HELD:
            return StepRefused(command.step_id, paid.reason or status.value.lower())
        return StepFailed(command.step_id, "payment_pending")

    def void(self, command: VoidPayment) -> Reply:
        paid = self.payments.get(command.order_id)
        if paid is None:
            paid = payment.void_tombstone(command.order_id, "tombstone", self.now)
            self.payments[command.order_id] = paid
        elif paid.request_void(self.now):
            self.ask_provider(paid)
        if paid.status in payment.NOTHING_HELD:
            return StepSucceeded(command.step_id)
        return StepFailed(command.step_id, f"payment_{paid.status.value.lower()}")

    def refund(self, command: RefundPayment) -> Reply:
        paid = self.payments.get(command.order_id)
        if paid is None:
            return StepFailed(command.step_id, "no_payment")
        if paid.request_refund(self.now):
            self.ask_provider(paid)
        if paid.status in payment.NOTHING_HELD:
            return StepSucceeded(command.step_id)
        return StepFailed(command.step_id, f"payment_{paid.status.value.lower()}")

    def reconcile(self) -> None:
        """payment-service's reconciler: one attempt for every open intent; hung captures
        at the provider may complete first."""
        for book in self.books.values():
            if self.rng.random() < 0.5:
                book.complete()
        for paid in list(self.payments.values()):
            self.ask_provider(paid, fresh=True)

    # -- order-service's handler --

    def apply(self, order_id: str, decision: Decision) -> None:
        for command in decision.commands:
            if isinstance(command, RecordOrder):
                assert order_id not in self.recorded
                self.recorded.add(order_id)
            elif isinstance(command, UpdateOrder):
                pass  # the order row exists from the start (written at PlaceOrder)
            elif isinstance(command, RaiseAlert):
                self.alerts += 1
            elif not isinstance(command, EmitEvent):
                self.inflight.append((order_id, command))

    def deliver_command(self, faults: bool) -> None:
        order_id, command = self.inflight.pop(self.rng.randrange(len(self.inflight)))
        roll = self.rng.random() if faults else 1.0
        if roll < self.fault_rate:  # never arrived: the caller's deadline fires
            self.replies.append((order_id, StepFailed(command.step_id, "deadline_exceeded")))
            return
        reply = self.execute(command)
        if roll < 2 * self.fault_rate:  # done, but the answer was lost
            reply = StepFailed(command.step_id, "deadline_exceeded")
        elif roll < 3 * self.fault_rate:  # at-least-once: delivered again later
            self.inflight.append((order_id, command))
        self.replies.append((order_id, reply))
        if roll < 4 * self.fault_rate:
            self.replies.append((order_id, reply))  # duplicated answer

    def deliver_reply(self) -> None:
        order_id, reply = self.replies.pop(self.rng.randrange(len(self.replies)))
        self.apply(order_id, self.sagas[order_id].handle(reply, self.now))

    def crash_and_recover(self) -> None:
        self.inflight.clear()
        self.replies.clear()
        for order_id, saga in self.sagas.items():
            self.apply(order_id, saga.resume(self.now))

    def consume_order_completed(self) -> None:
        event = self.completed_events.pop(0)
        if event.status not in ("captured", "declined"):
            return  # a give-back: order-service ignores it (handlers/orders.py)
        saga = self.sagas[event.order_id]
        captured = event.status == "captured"
        self.apply(event.order_id, saga.on_payment_completed(captured, self.now, event.reason))

    def sweep_expired(self) -> None:
        for reservation in inventory.due_for_expiry(self.reservations.values(), self.now):
            inventory.expire(self.stock, reservation, self.now)


def new_world(rng: random.Random, fault_rate: float, orders: int) -> World:
    world = World(rng, fault_rate)
    for entry in CATALOG.values():
        on_hand = rng.randrange(1, 10)
        world.stock[entry.sku] = inventory.StockItem(entry.sku, on_hand, 0, 1)
        world.received[entry.sku] = on_hand
    products = ["p-head", "p-cable", "p-mug"]
    for n in range(orders):
        items = [
            {"product_id": rng.choice(products), "quantity": rng.randrange(1, 3)} for _ in range(2)
        ]
        token = rng.choice(TOKENS)
        order = place(items, token, order_id=f"o{n}", key=f"k{n}")
        policy = RetryPolicy(
            forward_attempts=3, charge_attempts=2, commit_attempts=4, compensation_attempts=4
        )
        saga, decision = CheckoutSaga.start(order, token, world.now, policy)
        world.sagas[order.id] = saga
        world.apply(order.id, decision)
    return world


def chaos(world: World, steps: int, tick_seconds: int = 8) -> None:
    rng = world.rng
    for _ in range(steps):
        world.now += timedelta(seconds=rng.randrange(0, tick_seconds))
        roll = rng.random()
        if roll < 0.4 and world.inflight:
            world.deliver_command(faults=True)
        elif roll < 0.8 and world.replies:
            world.deliver_reply()
        elif roll < 0.84:
            world.reconcile()
        elif roll < 0.88 and world.completed_events:
            world.consume_order_completed()
        elif roll < 0.89:
            world.crash_and_recover()
        elif roll < 0.895:
            order_id = rng.choice(list(world.sagas))
            world.apply(order_id, world.sagas[order_id].request_cancel(world.now))
        elif roll < 0.96:
            world.sweep_expired()


def settle(world: World) -> None:
    """No more faults: deliver everything, let the recovery loop and the operator finish."""
    for _ in range(5_000):
        if world.inflight:
            world.deliver_command(faults=False)
        elif world.replies:
            world.deliver_reply()
        elif world.completed_events:
            world.consume_order_completed()
        elif any(p.open_call() for p in world.payments.values()):
            world.reconcile()
        else:
            unfinished = [s for s in world.sagas.values() if not s.is_finished]
            if not unfinished:
                break
            for saga in unfinished:
                if saga.state is SagaState.PARKED:
                    world.apply(saga.order_id, saga.retry_parked(world.now))
                else:
                    world.apply(saga.order_id, saga.resume(world.now))


def check_nothing_held_but_stale_requests(world: World, seed: int) -> None:
    """Before any final sweep: the saga released everything it reserved; only a reservation
    made by a stale duplicate request after its saga had ended may still be held, and
    expiry exists for exactly that (checked by `expire_leftovers` + `check_promises`)."""
    for order_id, reservation in world.reservations.items():
        if reservation.status is inventory.ReservationStatus.HELD:
            assert order_id in world.late_reservations, (seed, order_id, world.sagas[order_id])


def expire_leftovers(world: World) -> None:
    world.now += TTL + timedelta(seconds=1)
    world.sweep_expired()


def check_promises(world: World, seed: int) -> None:
    sold: Counter[str] = Counter()
    for order_id, saga in world.sagas.items():
        where = (seed, order_id, saga.state, saga.cancel_reason)
        assert saga.state in (SagaState.PAID, SagaState.CANCELLED), where
        assert saga.order.status.value == saga.state.value, where
        book = world.books.get(f"pay_{order_id}")
        captures, net = (book.captures, book.net) if book else (0, 0)
        assert captures <= 1, where  # captured at most once
        assert net == (1 if saga.state is SagaState.PAID else 0), where  # by the provider's books
        paid = world.payments.get(order_id)
        assert paid is None or paid.open_call() is None, where  # every intent settled
        reservation = world.reservations.get(order_id)
        if saga.state is SagaState.PAID:
            assert order_id in world.recorded, where
            assert reservation is not None, where
            assert reservation.status is inventory.ReservationStatus.COMMITTED, where
            for line in reservation.lines:
                sold[line.sku] += line.quantity
        else:
            assert reservation is None or reservation.status in (
                inventory.ReservationStatus.RELEASED,
                inventory.ReservationStatus.EXPIRED,
            ), where
    for sku, item in world.stock.items():
        assert item.reserved == 0, (seed, sku)
        assert item.on_hand >= 0, (seed, sku)
        assert item.on_hand + sold[sku] == world.received[sku], (seed, sku)  # never oversold


@pytest.mark.parametrize(
    ("fault_rate", "tick_seconds"),
    [(0.0, 8), (0.05, 8), (0.15, 8), (0.05, 60)],
    ids=["reliable", "some-faults", "many-faults", "slow-clock-expiring-reservations"],
)
def test_random_interleavings_end_paid_or_cancelled(fault_rate: float, tick_seconds: int) -> None:
    outcomes: Counter[str] = Counter()
    for seed in range(150):
        world = new_world(random.Random(seed), fault_rate, orders=4)
        chaos(world, steps=250, tick_seconds=tick_seconds)
        settle(world)
        check_nothing_held_but_stale_requests(world, seed)
        expire_leftovers(world)
        check_promises(world, seed)
        outcomes.update(s.state.value for s in world.sagas.values())
        outcomes.update(str(s.cancel_reason) for s in world.sagas.values())
    # The simulation must exercise both endings and the main roads to them, or it proves little.
    assert outcomes["PAID"] > 50
    assert outcomes["CANCELLED"] > 50
    assert outcomes["out_of_stock"] > 0
    assert outcomes["payment_declined"] > 0
    assert outcomes["payment_unavailable"] > 0
    if tick_seconds >= 60:  # reservations expire while sagas are still running
        assert outcomes["reservation_closed"] > 0


def test_compensation_that_never_succeeds_parks_and_alerts() -> None:
    """Property: with inventory down for good after a decline, sagas park (never vanish), an
    alert is raised for each, and they finish once the operator retries after the repair."""
    for seed in range(30):
        rng = random.Random(seed)
        saga, decision = CheckoutSaga.start(
            place(token="tok_chargeDeclined", order_id=f"o{seed}"),
            "tok_chargeDeclined",
            NOW,
            RetryPolicy(compensation_attempts=rng.randrange(1, 6)),
        )
        command = decision.remote[0]
        command = ok(saga, command).remote[0]  # reserved -> charge
        decision = saga.handle(StepRefused(command.step_id, "card_declined"), NOW)
        alerts = 0
        for _ in range(20):
            if saga.state is SagaState.PARKED:
                break
            command = decision.remote[0]
            assert isinstance(command, ReleaseStock)
            failure: Reply = StepFailed(command.step_id, "unavailable")
            decision = saga.resume(NOW) if rng.random() < 0.3 else saga.handle(failure, NOW)
            alerts += sum(isinstance(c, RaiseAlert) for c in decision.commands)
        assert saga.state is SagaState.PARKED
        assert alerts == 1
        release = saga.retry_parked(NOW).remote[0]
        ok(saga, release)
        assert saga.state is SagaState.CANCELLED
