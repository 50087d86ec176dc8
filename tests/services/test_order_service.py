"""order-service over a real gRPC server, with a real payment-service (its own migrated
database, the real sandbox provider over HTTP) beside it, on SQLite and PostgreSQL: the
checkout saga end to end (PAID with `order.created` and `order.completed` recorded;
declined, out of stock and `tok_timeout` ending CANCELLED with the stock given back and
nothing captured twice, by the provider's own books), Idempotency-Key replays (also of an
order answered PENDING and then refused), owner-only reads, cancelling a PAID order (refund +
release), compensations that fail then succeed, or never succeed and park (with the
operator's list / retry / cancel), the recovery loop resuming sagas left mid-way by a crash,
and `order.completed` reconciling a lost reply.

product-service and inventory-service are stood in for by `StubCatalog` and
`StubInventory`, small gRPC servicers in this file (those services are tested on their
own); the databases, the payment service, its provider and the gRPC plumbing are real.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import event, func, select

from emporium.chassis.backoff import Backoff
from emporium.chassis.db import Database
from emporium.chassis.errors import DomainError, ErrorCode, FieldError, conflict
from emporium.chassis.events.envelope import Event
from emporium.chassis.events.inbox import RelationalInbox
from emporium.chassis.rpc.client import create_channel, domain_error_from_rpc
from emporium.chassis.rpc.identity import Caller
from emporium.chassis.rpc.server import create_server
from emporium.contracts.rpc.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from emporium.contracts.rpc.order.v1 import order_pb2, order_pb2_grpc
from emporium.contracts.rpc.payment.v1 import payment_pb2, payment_pb2_grpc
from emporium.contracts.rpc.product.v1 import product_pb2, product_pb2_grpc
from emporium.services.order import store
from emporium.services.order.clients import RemoteServices, Targets
from emporium.services.order.consumers import GROUP
from emporium.services.order.domain import (
    CatalogEntry,
    IdempotencyRecord,
    Order,
    PlaceOrder,
    price_order,
)
from emporium.services.order.handlers import CheckoutRunner, Orders, Sagas
from emporium.services.order.rpc import OrderServicer
from emporium.services.order.saga import CheckoutSaga, RetryPolicy, SagaState, StepSucceeded
from emporium.services.payment import store as payment_store
from emporium.services.payment.handlers import Payments
from emporium.services.payment.provider import HttpPaymentProvider
from tests.sandbox_support import Sandbox, running_sandbox
from tests.services.test_payment_service import fresh_database_url, serve_payment

ADA = Caller("u-ada", frozenset({"user"}))
BOB = Caller("u-bob", frozenset({"user"}))
ADMIN = Caller("the-admin", frozenset({"admin", "user"}))
ORDER_SERVICE = Caller.system("order")
OPERATOR = Caller.system("operator")
# Compensation retries without the production pauses (the counts are the saga's own).
QUICK = Backoff(initial=0.01, maximum=0.05)
ADDRESS = order_pb2.ShippingAddress(
    line1="1 Analytical St", city="London", postal_code="N1 9GU", country="GB"
)
PRODUCTS = {
    "p-head": CatalogEntry("p-head", "HEAD-1", "Headphones", 4999, "USD"),
    "p-cable": CatalogEntry("p-cable", "CABLE-1", "Cable", 999, "USD"),
}


class StubCatalog(product_pb2_grpc.ProductServiceServicer):
    """Stand-in for product-service: GetProducts from a fixed catalog."""

    async def GetProducts(self, request: Any, context: Any) -> Any:
        found = [PRODUCTS[i] for i in request.ids if i in PRODUCTS]
        return product_pb2.GetProductsResponse(
            products=[
                product_pb2.Product(
                    id=p.product_id,
                    sku=p.sku,
                    name=p.name,
                    price_minor=p.price_minor,
                    currency=p.currency,
                )
                for p in found
            ],
            missing_ids=[i for i in request.ids if i not in PRODUCTS],
        )


@dataclass
class StubInventory(inventory_pb2_grpc.InventoryServiceServicer):
    """Stand-in for inventory-service: all-or-nothing holds, idempotent by order id."""

    on_hand: dict[str, int] = field(default_factory=lambda: {"HEAD-1": 10, "CABLE-1": 10})
    holds: dict[str, dict[str, int]] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    # ReleaseStock answers PERMISSION_DENIED this many more times (as during a deploy).
    refuse_releases: int = 0
    # How long a step ("reserve", "release") takes to answer: a slow inventory, a busy machine.
    delays: dict[str, float] = field(default_factory=dict)

    def available(self, sku: str) -> int:
        held = sum(
            lines.get(sku, 0) for oid, lines in self.holds.items() if self.status[oid] == "HELD"
        )
        return self.on_hand.get(sku, 0) - held

    async def ReserveStock(self, request: Any, context: Any) -> Any:
        self.calls.append(("reserve", request.order_id))
        await asyncio.sleep(self.delays.get("reserve", 0.0))
        if request.order_id not in self.holds:
            short = [
                FieldError(line.sku, "not enough stock")
                for line in request.lines
                if self.available(line.sku) < line.quantity
            ]
            if short:
                raise DomainError("out of stock", ErrorCode.CONFLICT, "out_of_stock", short)
            self.holds[request.order_id] = {line.sku: line.quantity for line in request.lines}
            self.status[request.order_id] = "HELD"
        return inventory_pb2.Reservation(order_id=request.order_id)

    async def CommitStock(self, request: Any, context: Any) -> Any:
        self.calls.append(("commit", request.order_id))
        if self.status.get(request.order_id) not in ("HELD", "COMMITTED"):
            raise conflict("reservation closed", "reservation_closed")
        if self.status[request.order_id] == "HELD":
            for sku, qty in self.holds[request.order_id].items():
                self.on_hand[sku] -= qty
            self.status[request.order_id] = "COMMITTED"
        return inventory_pb2.Reservation(order_id=request.order_id)

    async def ReleaseStock(self, request: Any, context: Any) -> Any:
        self.calls.append(("release", request.order_id))
        await asyncio.sleep(self.delays.get("release", 0.0))
        if self.refuse_releases:
            self.refuse_releases -= 1
            raise DomainError("not allowed right now", ErrorCode.PERMISSION_DENIED, "denied")
        if self.status.get(request.order_id) == "COMMITTED":
            for sku, qty in self.holds[request.order_id].items():
                self.on_hand[sku] += qty
        self.status[request.order_id] = "RELEASED"
        return inventory_pb2.Reservation(order_id=request.order_id)

    def steps(self, order_id: str) -> list[str]:
        return [step for step, oid in self.calls if oid == order_id]


async def rpc_error(call: Awaitable[Any]) -> DomainError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return domain_error_from_rpc(caught.value)


@dataclass
class CheckoutWorld:
    db: Database
    payment_db: Database
    sandbox: Sandbox
    inventory: StubInventory
    targets: Targets
    order_target: str
    runner: CheckoutRunner
    orders: Orders
    channels: list[Any] = field(default_factory=list)
    closers: list[Any] = field(default_factory=list)

    def stub(self, caller: Caller = ADA) -> Any:
        channel = create_channel(self.order_target, service="test", caller=caller)
        self.channels.append(channel)
        return order_pb2_grpc.OrderServiceStub(channel)

    def payments(self) -> Any:
        channel = create_channel(self.targets.payment, service="test", caller=ORDER_SERVICE)
        self.channels.append(channel)
        return payment_pb2_grpc.PaymentServiceStub(channel)

    async def place(
        self,
        token: str = "tok_visa",
        items: tuple[tuple[str, int], ...] = (("p-head", 2), ("p-cable", 1)),
        key: str = "",
        caller: Caller = ADA,
    ) -> Any:
        request = order_pb2.PlaceOrderRequest(
            idempotency_key=key or f"k-{uuid.uuid4().hex}",
            items=[order_pb2.OrderLine(product_id=p, quantity=q) for p, q in items],
            payment_token=token,
            shipping_address=ADDRESS,
        )
        return await self.stub(caller).PlaceOrder(request, timeout=15)

    async def outbox(self, db: Database, table: Any, topic: str) -> list[dict[str, Any]]:
        async with db.session() as session:
            rows = (
                await session.execute(
                    select(table.c.aggregateid, table.c.payload).where(table.c.topic == topic)
                )
            ).all()
        return [{"key": row[0], **json.loads(row[1])} for row in rows]

    async def order_rows(self) -> int:
        async with self.db.session() as session:
            return int(await session.scalar(select(func.count()).select_from(store.orders)) or 0)

    async def books(self) -> dict[str, dict[str, Any]]:
        """The provider's ledger by order id (payment ids are the provider's keys)."""
        async with self.payment_db.session() as session:
            rows = (await session.execute(select(payment_store.payments))).all()
        found = {row.order_id: self.sandbox.entry(row.id) for row in rows}
        return {order_id: entry for order_id, entry in found.items() if entry is not None}

    async def captures(self) -> dict[str, int]:
        return {oid: e["captures"] for oid, e in (await self.books()).items() if e["captures"]}

    def sagas(self, caller: Caller = OPERATOR) -> Any:
        return self.stub(caller)

    async def saga(self, order_id: str) -> CheckoutSaga:
        async with self.db.session() as session:
            saga = await store.read_saga(session, order_id)
        assert saga is not None
        return saga


async def _serve(*registrations: tuple[Any, Any]) -> tuple[Any, str]:
    server = create_server("test")
    for add, servicer in registrations:
        add(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CheckoutWorld]:
    order_urls = fresh_database_url("order", request.param, tmp_path)
    payment_urls = fresh_database_url("payment", request.param, tmp_path)
    db = Database(await anext(order_urls))
    payment_db = Database(await anext(payment_urls))
    sandbox_context = running_sandbox(tmp_path, hang_seconds=4.0)
    sandbox = await sandbox_context.__aenter__()
    provider = HttpPaymentProvider(sandbox.url, timeout=2.0)
    payment_server, payment_target = await serve_payment(Payments(payment_db, provider))
    inventory = StubInventory()
    stubs_server, stubs_target = await _serve(
        (product_pb2_grpc.add_ProductServiceServicer_to_server, StubCatalog()),
        (inventory_pb2_grpc.add_InventoryServiceServicer_to_server, inventory),
    )
    targets = Targets(stubs_target, stubs_target, payment_target)
    remote = RemoteServices(targets, charge_timeout=2.0)
    policy = RetryPolicy(compensation_attempts=10)
    runner = CheckoutRunner(db, remote, stale_after=3600, patient_backoff=QUICK, policy=policy)
    orders = Orders(db, remote, runner, wait_budget=10)
    servicer = OrderServicer(orders, Sagas(db, runner))
    order_server, order_target = await _serve(
        (order_pb2_grpc.add_OrderServiceServicer_to_server, servicer)
    )
    world = CheckoutWorld(db, payment_db, sandbox, inventory, targets, order_target, runner, orders)
    try:
        yield world
    finally:
        for channel in world.channels:
            await channel.close()
        await runner.close()
        for closer in world.closers:
            await closer()
        await remote.close()
        for server in (order_server, stubs_server, payment_server):
            await server.stop(None)
        await provider.close()
        await sandbox_context.__aexit__(None, None, None)
        await db.close()
        await payment_db.close()
        await order_urls.aclose()
        await payment_urls.aclose()


# --- the happy checkout ---------------------------------------------------------------------


async def test_checkout_ends_paid_with_both_events(world: CheckoutWorld) -> None:
    placed = await world.place()
    order = placed.order
    assert (order.status, placed.replayed) == (order_pb2.ORDER_STATUS_PAID, False)
    assert (order.payment.status, order.total_minor, order.currency) == ("CAPTURED", 10997, "USD")
    assert [(i.product_id, i.sku, i.quantity, i.unit_price_minor) for i in order.items] == [
        ("p-head", "HEAD-1", 2, 4999),
        ("p-cable", "CABLE-1", 1, 999),
    ]
    assert world.inventory.steps(order.id) == ["reserve", "commit"]
    assert world.inventory.on_hand == {"HEAD-1": 8, "CABLE-1": 9}
    assert await world.captures() == {order.id: 1}

    (created,) = await world.outbox(world.db, store.outbox, "order.created")
    assert (created["key"], created["user_id"], created["total"]) == (order.id, "u-ada", "109.97")
    assert [(line["product_id"], line["sku"]) for line in created["lines"]] == [
        ("p-head", "HEAD-1"),
        ("p-cable", "CABLE-1"),
    ]
    (completed,) = await world.outbox(world.payment_db, payment_store.outbox, "order.completed")
    assert (completed["order_id"], completed["status"], completed["user_id"]) == (
        order.id,
        "captured",
        "u-ada",
    )
    fetched = await world.stub().GetOrder(order_pb2.GetOrderRequest(order_id=order.id))
    assert (fetched.status, fetched.payment.status) == (order_pb2.ORDER_STATUS_PAID, "CAPTURED")


async def test_a_saga_slower_than_the_budget_answers_pending(world: CheckoutWorld) -> None:
    world.orders.wait_budget = 0.0  # REST 202: the saga goes on after the answer
    placed = await world.place(key="k-slow")
    assert placed.order.status == order_pb2.ORDER_STATUS_PENDING
    await world.runner.wait(placed.order.id, 10)
    fetched = await world.stub().GetOrder(order_pb2.GetOrderRequest(order_id=placed.order.id))
    assert fetched.status == order_pb2.ORDER_STATUS_PAID
    replayed = await world.place(key="k-slow")
    assert (replayed.order.status, replayed.replayed) == (order_pb2.ORDER_STATUS_PAID, True)


# --- ends CANCELLED -------------------------------------------------------------------------


async def test_a_declined_payment_cancels_and_releases_the_stock(world: CheckoutWorld) -> None:
    order = (await world.place("tok_chargeDeclinedInsufficientFunds")).order
    assert order.status == order_pb2.ORDER_STATUS_CANCELLED
    assert (order.payment.status, order.payment.reason) == ("DECLINED", "insufficient_funds")
    assert order.cancel_reason == "payment_declined"
    assert world.inventory.steps(order.id) == ["reserve", "release"]
    assert world.inventory.available("HEAD-1") == 10
    (completed,) = await world.outbox(world.payment_db, payment_store.outbox, "order.completed")
    assert completed["status"] == "declined"


async def test_out_of_stock_is_a_409_before_anything_is_charged(world: CheckoutWorld) -> None:
    key = "k-too-many"
    err = await rpc_error(world.place(items=(("p-head", 11), ("p-cable", 1)), key=key))
    assert (err.code, err.reason) == (ErrorCode.CONFLICT, "out_of_stock")
    assert [f.field for f in err.fields] == ["HEAD-1"]
    again = await rpc_error(world.place(items=(("p-head", 11), ("p-cable", 1)), key=key))
    assert (again.code, again.reason, again.fields) == (err.code, err.reason, err.fields)

    assert await world.books() == {}
    assert await world.outbox(world.db, store.outbox, "order.created") == []  # never placed
    (listed,) = (await world.stub().ListOrders(order_pb2.ListOrdersRequest())).items
    assert (listed.status, listed.cancel_reason) == (
        order_pb2.ORDER_STATUS_CANCELLED,
        "out_of_stock",
    )


async def test_an_order_answered_pending_then_refused_still_exists(world: CheckoutWorld) -> None:
    world.orders.wait_budget = 0.0  # answered PENDING (REST 202) before inventory refuses
    placed = await world.place(items=(("p-head", 11),), key="k-late-refusal")
    order_id = placed.order.id
    assert placed.order.status == order_pb2.ORDER_STATUS_PENDING
    await world.runner.wait(order_id, 10)
    fetched = await world.stub().GetOrder(order_pb2.GetOrderRequest(order_id=order_id))
    assert (fetched.status, fetched.cancel_reason) == (
        order_pb2.ORDER_STATUS_CANCELLED,
        "out_of_stock",
    )
    listed = await world.stub().ListOrders(order_pb2.ListOrdersRequest())
    assert [o.id for o in listed.items] == [order_id]
    again = await world.place(items=(("p-head", 11),), key="k-late-refusal")
    assert (again.order.id, again.order.status, again.replayed) == (
        order_id,
        order_pb2.ORDER_STATUS_CANCELLED,
        True,
    )  # the replay answers the order it promised, not a 409


async def test_a_hanging_provider_ends_cancelled_and_charged_once(world: CheckoutWorld) -> None:
    order = (await world.place("tok_timeout")).order
    assert order.status == order_pb2.ORDER_STATUS_CANCELLED
    assert order.payment.status == "VOIDED"
    book = (await world.books())[order.id]
    assert (book["status"], book["captures"], book["net_minor"]) == ("voided", 0, 0)
    assert world.inventory.steps(order.id)[-1] == "release"
    payment = await world.payments().GetPayment(payment_pb2.GetPaymentRequest(order_id=order.id))
    assert payment.status == payment_pb2.PAYMENT_STATUS_VOIDED
    assert await world.outbox(world.payment_db, payment_store.outbox, "order.completed") == []
    saga = await world.saga(order.id)
    assert (saga.state, saga.awaiting) == (SagaState.CANCELLED, None)


async def test_bad_input_is_named_and_holds_nothing(world: CheckoutWorld) -> None:
    unknown = await rpc_error(world.place(items=(("p-nope", 1),)))
    assert (unknown.code, [f.field for f in unknown.fields]) == (
        ErrorCode.INVALID_ARGUMENT,
        ["items.0.product_id"],
    )
    token = await rpc_error(world.place("tok_stolen_card_number"))
    assert [f.field for f in token.fields] == ["payment_token"]
    nobody = await rpc_error(world.place(caller=Caller.anonymous()))
    assert nobody.code is ErrorCode.UNAUTHENTICATED
    assert world.inventory.calls == []
    assert await world.order_rows() == 0


# --- Idempotency-Key ------------------------------------------------------------------------


async def test_the_same_key_replays_and_a_different_body_is_refused(world: CheckoutWorld) -> None:
    first = await world.place(key="k-1")
    again = await world.place(key="k-1")
    assert (again.order.id, again.order.status, again.replayed) == (
        first.order.id,
        order_pb2.ORDER_STATUS_PAID,
        True,
    )
    other = await rpc_error(world.place(key="k-1", items=(("p-cable", 3),)))
    assert (other.code, other.reason) == (ErrorCode.CONFLICT, "idempotency_key_reused")
    assert await world.order_rows() == 1
    assert await world.captures() == {first.order.id: 1}
    bobs = await world.place(key="k-1", caller=BOB)  # keys are per user
    assert bobs.order.id != first.order.id


# --- reads ----------------------------------------------------------------------------------


async def test_orders_are_visible_to_their_owner_and_admins(world: CheckoutWorld) -> None:
    first = (await world.place()).order
    second = (await world.place(items=(("p-cable", 1),))).order
    hidden = await rpc_error(world.stub(BOB).GetOrder(order_pb2.GetOrderRequest(order_id=first.id)))
    assert hidden.code is ErrorCode.NOT_FOUND
    seen = await world.stub(ADMIN).GetOrder(order_pb2.GetOrderRequest(order_id=first.id))
    assert seen.user_id == "u-ada"

    page = await world.stub().ListOrders(order_pb2.ListOrdersRequest(limit=1))
    assert [o.id for o in page.items] == [second.id]  # newest first
    rest = await world.stub().ListOrders(
        order_pb2.ListOrdersRequest(limit=1, cursor=page.next_cursor)
    )
    assert ([o.id for o in rest.items], rest.next_cursor) == ([first.id], "")
    assert list((await world.stub(BOB).ListOrders(order_pb2.ListOrdersRequest())).items) == []
    snoop = await rpc_error(
        world.stub(BOB).ListOrders(order_pb2.ListOrdersRequest(user_id="u-ada"))
    )
    assert snoop.code is ErrorCode.PERMISSION_DENIED


async def test_a_finished_order_is_answered_and_read_without_a_transaction(
    world: CheckoutWorld,
) -> None:
    """The hot reads (GetOrder, ListOrders, a replayed PlaceOrder, the answer of a saga that
    finished) are lone SELECTs: no BEGIN, no write lock taken just to read."""
    placed = (await world.place(key="k-hot")).order
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.lstrip().split(None, 1)[0].upper())

    engine = world.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        got = await world.stub().GetOrder(order_pb2.GetOrderRequest(order_id=placed.id))
        page = await world.stub().ListOrders(order_pb2.ListOrdersRequest(limit=5))
        again = await world.place(key="k-hot")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert (got.id, [o.id for o in page.items], again.order.id) == (
        placed.id,
        [placed.id],
        placed.id,
    )
    assert again.replayed
    assert statements
    assert set(statements) == {"SELECT"}, statements


QUOTE = chr(34)  # identifiers may come quoted


def _table_statements(engine: Any) -> tuple[list[str], Callable[[], None]]:
    """Record `VERB table` of every statement `engine` runs; call the second to stop."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        words = statement.split()
        verb = words[0].upper()
        anchor = {"SELECT": "FROM", "INSERT": "INTO", "DELETE": "FROM"}.get(verb)
        upper = [w.upper() for w in words]
        table = words[upper.index(anchor) + 1] if anchor in upper else words[1]
        seen.append(verb + " " + table.strip(QUOTE))

    event.listen(engine, "before_cursor_execute", record)
    return seen, lambda: event.remove(engine, "before_cursor_execute", record)


async def test_the_driver_saves_each_step_without_reading_the_saga_back(
    world: CheckoutWorld,
) -> None:
    """Between its steps the driver holds the saga it committed: each step is one
    version-checked UPDATE of the saga (no SELECT of it), and the order row is written only
    when the order changed (the payment captured, then PAID)."""
    statements, stop = _table_statements(world.db.engine.sync_engine)
    try:
        placed = (await world.place()).order
    finally:
        stop()
    assert placed.status == order_pb2.ORDER_STATUS_PAID
    assert statements.count("UPDATE checkout_sagas") == 3, statements  # reserved, charged, done
    assert statements.count("UPDATE orders") == 2, statements  # charged, paid
    # PlaceOrder's answer reads the finished saga once; the driver never does.
    assert statements.count("SELECT checkout_sagas") == 1, statements


async def test_a_saga_moved_behind_the_drivers_back_is_decided_on_its_row(
    world: CheckoutWorld,
) -> None:
    """A cancel lands while the reserve is in flight: the driver's held copy is stale, its
    version-checked save finds the row moved, and the reply is decided again on the row as
    it stands: the stock is released and nothing is ever charged."""
    world.orders.wait_budget = 0.0  # answered PENDING while the reserve is in flight
    world.inventory.delays["reserve"] = 1.0
    order = (await world.place()).order
    assert order.status == order_pb2.ORDER_STATUS_PENDING
    await world.stub().CancelOrder(order_pb2.CancelOrderRequest(order_id=order.id))
    assert (await world.saga(order.id)).cancel_requested
    await world.runner.wait(order.id, 10)
    saga = await world.saga(order.id)
    assert (saga.state, saga.stock.value, saga.payment.value) == (
        SagaState.CANCELLED,
        "RELEASED",
        "NONE",
    )
    assert world.inventory.steps(order.id) == ["reserve", "release"]
    assert order.id not in await world.books()  # never charged


# --- CancelOrder ----------------------------------------------------------------------------


async def test_cancelling_a_paid_order_refunds_and_releases(world: CheckoutWorld) -> None:
    order = (await world.place()).order
    stranger = await rpc_error(
        world.stub(BOB).CancelOrder(order_pb2.CancelOrderRequest(order_id=order.id))
    )
    assert stranger.code is ErrorCode.NOT_FOUND

    cancelled = await world.stub().CancelOrder(order_pb2.CancelOrderRequest(order_id=order.id))
    assert (cancelled.status, cancelled.payment.status) == (
        order_pb2.ORDER_STATUS_CANCELLED,
        "REFUNDED",
    )
    book = (await world.books())[order.id]
    assert (book["refunded_minor"], book["net_minor"]) == (10997, 0)
    assert world.inventory.steps(order.id) == ["reserve", "commit", "release"]
    assert world.inventory.on_hand == {"HEAD-1": 10, "CABLE-1": 10}

    again = await world.stub().CancelOrder(order_pb2.CancelOrderRequest(order_id=order.id))
    assert again.status == order_pb2.ORDER_STATUS_CANCELLED
    assert (await world.books())[order.id]["refunded_minor"] == 10997  # once


# --- crash recovery and order.completed ----------------------------------------------------


async def _saga_left_midway(world: CheckoutWorld, *, charged: bool) -> CheckoutSaga:
    """What a crash leaves behind: the saga saved, its remote step never answered.
    charged=False: crashed right after PlaceOrder's first commit (reserve never sent).
    charged=True: crashed while charging, after payment-service had captured."""
    now = datetime.now(UTC)
    command = PlaceOrder.parse(
        "u-ada",
        f"k-{uuid.uuid4().hex}",
        {
            "items": [{"product_id": "p-head", "quantity": 1}],
            "payment_token": "tok_visa",
            "shipping_address": {
                "line1": "1 Analytical St",
                "city": "London",
                "postal_code": "N1",
                "country": "GB",
            },
        },
    )
    order = Order.place(f"ord_{uuid.uuid4().hex}", command, price_order(command, PRODUCTS), now)
    saga, decision = CheckoutSaga.start(order, "tok_visa", now)
    if charged:
        await world.inventory.ReserveStock(
            inventory_pb2.ReserveStockRequest(
                order_id=order.id, lines=[inventory_pb2.ReservationLine(sku="HEAD-1", quantity=1)]
            ),
            None,
        )
        decision = saga.handle(StepSucceeded(decision.remote[0].step_id), now)
        charge = decision.remote[0]
        await world.payments().Charge(
            payment_pb2.ChargeRequest(
                order_id=order.id,
                user_id="u-ada",
                amount_minor=order.total_minor,
                currency="USD",
                payment_token="tok_visa",
            )
        )
        assert saga.awaiting == charge.step_id
    async with world.db.unit_of_work() as uow:
        record = IdempotencyRecord("u-ada", command.idempotency_key, order.fingerprint, order.id)
        await store.insert_idempotency_record(uow.session, record, now)
        await store.insert_saga(uow.session, saga, now)
        if charged:
            await store.insert_order(uow.session, order)
        await uow.commit()
    return saga


async def test_the_recovery_loop_resumes_sagas_left_midway(world: CheckoutWorld) -> None:
    fresh = await _saga_left_midway(world, charged=False)
    charging = await _saga_left_midway(world, charged=True)
    # A restarted process: a new runner with the same database and services.
    restarted = CheckoutRunner(world.db, world.runner.remote, stale_after=0)
    world.closers.append(restarted.close)
    assert await restarted.recover_once() == 2
    for order_id in (fresh.order_id, charging.order_id):
        await restarted.wait(order_id, 10)
        saga = await world.saga(order_id)
        assert (saga.state, saga.order.status.value) == (SagaState.PAID, "PAID")
        assert world.inventory.status[order_id] == "COMMITTED"
    # The pre-crash charge was found again: each order was captured once.
    assert await world.captures() == {fresh.order_id: 1, charging.order_id: 1}
    assert await restarted.recover_once() == 0


async def test_unfinished_sagas_are_reported_by_state(world: CheckoutWorld) -> None:
    await _saga_left_midway(world, charged=False)
    await _saga_left_midway(world, charged=True)
    patient = CheckoutRunner(world.db, world.runner.remote, stale_after=3600)
    world.closers.append(patient.close)
    assert await patient.recover_once() == 0  # not idle long enough to be resumed

    def sagas(state: str) -> float | None:
        labels = {"service": "order", "saga": "checkout", "state": state}
        return REGISTRY.get_sample_value("emporium_saga_instances", labels)

    assert (sagas("RESERVING_STOCK"), sagas("CHARGING"), sagas("PARKED")) == (1, 1, 0)
    assert sagas("PAID") is None  # final states are not reported


async def test_order_completed_reconciles_a_lost_charge_reply(world: CheckoutWorld) -> None:
    saga = await _saga_left_midway(world, charged=True)
    (completed,) = await world.outbox(world.payment_db, payment_store.outbox, "order.completed")
    event = Event(
        source="/emporium/payment",
        type="com.emporium.order.completed.v1",
        subject=saga.order_id,
        data={k: v for k, v in completed.items() if k != "key"},
    )
    inbox = RelationalInbox(world.db)
    assert await inbox.apply_once(GROUP, event, world.orders.on_payment_completed)
    assert not await inbox.apply_once(GROUP, event, world.orders.on_payment_completed)
    await world.runner.wait(saga.order_id, 10)
    after = await world.saga(saga.order_id)
    assert (after.state, after.payment.value) == (SagaState.PAID, "CAPTURED")
    fetched = await world.stub().GetOrder(order_pb2.GetOrderRequest(order_id=saga.order_id))
    assert fetched.status == order_pb2.ORDER_STATUS_PAID

    stale = Event(
        source=event.source, type=event.type, subject=event.subject, data=event.data
    )  # the same news again under a new id (e.g. republished): the saga is past CHARGING
    assert await inbox.apply_once(GROUP, stale, world.orders.on_payment_completed)
    assert (await world.saga(saga.order_id)).version == after.version
    assert await world.captures() == {saga.order_id: 1}


# --- compensations that fail: retried, parked, and the operator's way out ------------------


async def test_a_refused_release_is_retried_until_it_succeeds(world: CheckoutWorld) -> None:
    world.inventory.refuse_releases = 3  # PERMISSION_DENIED is not "nothing to undo"
    order = (await world.place("tok_chargeDeclined")).order
    assert order.status == order_pb2.ORDER_STATUS_CANCELLED
    assert world.inventory.steps(order.id) == ["reserve"] + ["release"] * 4
    assert world.inventory.available("HEAD-1") == 10


async def test_a_void_the_provider_keeps_failing_is_retried_until_confirmed(
    world: CheckoutWorld,
) -> None:
    await world.sandbox.fault("void", "fail", 3)
    order = (await world.place("tok_timeout")).order
    assert (order.status, order.payment.status) == (order_pb2.ORDER_STATUS_CANCELLED, "VOIDED")
    book = (await world.books())[order.id]
    assert (book["status"], book["captures"]) == ("voided", 0)
    saga = await world.saga(order.id)
    assert saga.payment.value == "VOIDED"


async def test_a_compensation_that_never_succeeds_parks_and_the_operator_settles_it(
    world: CheckoutWorld,
) -> None:
    def parked_total() -> float:
        labels = {"service": "order", "saga": "checkout"}
        return REGISTRY.get_sample_value("emporium_sagas_parked_total", labels) or 0.0

    before = parked_total()
    world.inventory.refuse_releases = 10_000
    first = (await world.place("tok_chargeDeclined")).order
    second = (await world.place("tok_chargeDeclined", items=(("p-cable", 1),))).order
    for order in (first, second):
        await world.runner.wait(order.id, 10)
        saga = await world.saga(order.id)
        assert saga.state is SagaState.PARKED
        assert saga.parked_reason == "denied (10 attempts)"
    assert parked_total() == before + 2

    listed = await world.sagas().ListSagas(order_pb2.ListSagasRequest(states=["PARKED"]))
    assert sorted(s.order_id for s in listed.sagas) == sorted([first.id, second.id])
    assert {(s.state, s.stock, s.order_status) for s in listed.sagas} == {
        ("PARKED", "HELD", "PENDING")
    }
    for stranger in (ADA, ADMIN, ORDER_SERVICE):  # the operator's, nobody else's
        refused = await rpc_error(world.sagas(stranger).ListSagas(order_pb2.ListSagasRequest()))
        assert refused.code is ErrorCode.PERMISSION_DENIED

    world.inventory.refuse_releases = 0  # the cause is fixed: retry one
    retried = await world.sagas().RetrySaga(order_pb2.RetrySagaRequest(order_id=first.id))
    assert (retried.state, retried.order_status) == ("CANCELLED", "CANCELLED")
    # The other was settled by hand: close it without sending anything more.
    closed = await world.sagas().CancelSaga(
        order_pb2.CancelSagaRequest(order_id=second.id, note="restocked by hand")
    )
    assert (closed.state, closed.cancel_reason) == ("CANCELLED", "operator: restocked by hand")
    assert world.inventory.steps(second.id).count("release") == 10
    again = await rpc_error(world.sagas().RetrySaga(order_pb2.RetrySagaRequest(order_id=second.id)))
    assert (again.code, again.reason) == (ErrorCode.FAILED_PRECONDITION, "saga_not_parked")
    left = await world.sagas().ListSagas(order_pb2.ListSagasRequest(states=["PARKED"]))
    assert list(left.sagas) == []


async def test_a_retry_slower_than_the_operators_deadline_answers_in_time(
    world: CheckoutWorld,
) -> None:
    """The retried compensation outlasts the operator's deadline: RetrySaga answers with the
    state reached by then (not DEADLINE_EXCEEDED), and the compensation still finishes."""
    world.inventory.refuse_releases = 10_000
    order = (await world.place("tok_chargeDeclined")).order
    await world.runner.wait(order.id, 10)
    assert (await world.saga(order.id)).state is SagaState.PARKED

    world.inventory.refuse_releases, world.inventory.delays["release"] = 0, 2.0
    request = order_pb2.RetrySagaRequest(order_id=order.id)
    answered = await world.sagas().RetrySaga(request, timeout=1.0)
    assert (answered.order_id, answered.state) == (order.id, "RELEASING_STOCK")
    await world.runner.wait(order.id, 10)
    saga = await world.saga(order.id)
    assert (saga.state, saga.stock.value) == (SagaState.CANCELLED, "RELEASED")
