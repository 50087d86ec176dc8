"""inventory-service over a real gRPC server on migrated SQLite and PostgreSQL: admin-only
stock counts, system-only reservations that are idempotent by order id and all-or-nothing,
`out_of_stock` naming the short skus, `inventory.low` once per crossing (in the outbox),
expiry, the `order.created` consumer (through the relational inbox), and no overselling
under concurrent reservations."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from emporium.chassis.db import Database
from emporium.chassis.errors import DomainError, ErrorCode
from emporium.chassis.events.inbox import RelationalInbox
from emporium.chassis.events.outbox import build_event
from emporium.chassis.migrations import migrate
from emporium.chassis.rpc.client import create_channel, domain_error_from_rpc
from emporium.chassis.rpc.identity import Caller
from emporium.chassis.rpc.server import create_server
from emporium.contracts.events import InventoryLowV1, OrderCreatedV1, OrderLineV1
from emporium.contracts.rpc.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from emporium.services.inventory import store
from emporium.services.inventory.consumers import GROUP, order_created_handler
from emporium.services.inventory.handlers import Inventory
from emporium.services.inventory.rpc import InventoryServicer
from tests.backends import backend_url

ADMIN = Caller("the-admin", frozenset({"admin", "user"}))
SHOPPER = Caller("u-shopper", frozenset({"user"}))
ORDER_SERVICE = Caller.system("order")
ANONYMOUS = Caller.anonymous()
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

HELD = inventory_pb2.RESERVATION_STATUS_HELD
COMMITTED = inventory_pb2.RESERVATION_STATUS_COMMITTED
RELEASED = inventory_pb2.RESERVATION_STATUS_RELEASED
EXPIRED = inventory_pb2.RESERVATION_STATUS_EXPIRED


async def fresh_database_url(service: str, kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated database: a SQLite file, or a new PostgreSQL database dropped after."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/{service}.sqlite3"
        await migrate(service, url)
        yield url
        return
    admin = make_url(backend_url("postgresql"))
    name = f"emporium_{service}_{uuid.uuid4().hex}"
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        url = admin.set(database=name).render_as_string(hide_password=False)
        await migrate(service, url)
        yield url
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def rpc_error(call: Awaitable[Any]) -> DomainError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return domain_error_from_rpc(caught.value)


def unique_sku(prefix: str = "SKU") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def reserve_request(order_id: str, *lines: tuple[str, int], ttl: int = 0) -> Any:
    return inventory_pb2.ReserveStockRequest(
        order_id=order_id,
        lines=[inventory_pb2.ReservationLine(sku=s, quantity=q) for s, q in lines],
        ttl_seconds=ttl,
    )


@dataclass
class InventoryWorld:
    db: Database
    inventory: Inventory
    target: str
    now: list[datetime]
    channels: list[Any] = field(default_factory=list)

    def stub(self, caller: Caller = ORDER_SERVICE) -> Any:
        channel = create_channel(self.target, service="test", caller=caller, default_timeout=30)
        self.channels.append(channel)
        return inventory_pb2_grpc.InventoryServiceStub(channel)

    async def set_stock(self, sku: str, on_hand: int, threshold: int | None = None) -> Any:
        request = inventory_pb2.SetStockRequest(sku=sku, on_hand=on_hand)
        if threshold is not None:
            request.low_stock_threshold = threshold
        return await self.stub(ADMIN).SetStock(request)

    async def level(self, sku: str) -> Any:
        return await self.stub(ANONYMOUS).GetStock(inventory_pb2.GetStockRequest(sku=sku))

    async def low_events(self) -> list[InventoryLowV1]:
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(store.outbox.c.aggregateid, store.outbox.c.payload)
                    .where(store.outbox.c.topic == "inventory.low")
                    .order_by(store.outbox.c.seq)
                )
            ).all()
        events = [InventoryLowV1.model_validate(json.loads(row[1])) for row in rows]
        assert [row[0] for row in rows] == [e.sku for e in events]  # key = sku
        return events


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[InventoryWorld]:
    urls = fresh_database_url("inventory", request.param, tmp_path)
    db = Database(await anext(urls))
    now = [START]
    inventory = Inventory(db, clock=lambda: now[0])
    server = create_server("test")
    inventory_pb2_grpc.add_InventoryServiceServicer_to_server(InventoryServicer(inventory), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    world = InventoryWorld(db, inventory, f"127.0.0.1:{port}", now)
    try:
        yield world
    finally:
        for channel in world.channels:
            await channel.close()
        await server.stop(None)
        await db.close()
        await urls.aclose()


# --- SetStock / GetStock ---------------------------------------------------------------------


async def test_set_stock_is_an_absolute_admin_count_readable_by_anyone(
    world: InventoryWorld,
) -> None:
    sku = unique_sku()
    level = await world.set_stock(sku, 40, threshold=3)
    assert (level.sku, level.on_hand, level.reserved, level.available) == (sku, 40, 0, 40)
    assert level.low_stock_threshold == 3
    again = await world.set_stock(sku, 40)  # PUT again: same state, threshold kept
    assert (again.on_hand, again.low_stock_threshold) == (40, 3)
    read = await world.level(sku)
    assert (read.on_hand, read.reserved, read.available, read.low_stock_threshold) == (40, 0, 40, 3)
    default = await world.set_stock(unique_sku(), 100)
    assert default.low_stock_threshold == 5  # the domain's default


async def test_stock_writes_need_an_admin(world: InventoryWorld) -> None:
    request = inventory_pb2.SetStockRequest(sku=unique_sku(), on_hand=5)
    assert (await rpc_error(world.stub(SHOPPER).SetStock(request))).code == (
        ErrorCode.PERMISSION_DENIED
    )
    assert (await rpc_error(world.stub(ANONYMOUS).SetStock(request))).code == (
        ErrorCode.UNAUTHENTICATED
    )
    unknown = await rpc_error(world.level(request.sku))
    assert unknown.code == ErrorCode.NOT_FOUND


async def test_bad_stock_input_names_the_field(world: InventoryWorld) -> None:
    bad_sku = await rpc_error(world.set_stock("no spaces/allowed", 5))
    assert (bad_sku.code, [f.field for f in bad_sku.fields]) == (
        ErrorCode.INVALID_ARGUMENT,
        ["sku"],
    )
    negative = await rpc_error(world.set_stock(unique_sku(), -1, threshold=-2))
    assert {f.field for f in negative.fields} == {"on_hand", "low_stock_threshold"}


async def test_on_hand_below_reserved_is_a_409(world: InventoryWorld) -> None:
    sku = unique_sku()
    await world.set_stock(sku, 10)
    await world.stub().ReserveStock(reserve_request("o-1", (sku, 6)))
    error = await rpc_error(world.set_stock(sku, 5))
    assert (error.code, error.reason, error.http_status) == (
        ErrorCode.FAILED_PRECONDITION,
        "below_reserved",
        409,
    )
    assert (await world.level(sku)).on_hand == 10


# --- ReserveStock ----------------------------------------------------------------------------


async def test_reserve_is_idempotent_by_order_id(world: InventoryWorld) -> None:
    a, b = unique_sku("A"), unique_sku("B")
    await world.set_stock(a, 10)
    await world.set_stock(b, 10)
    order = world.stub()
    first = await order.ReserveStock(reserve_request("o-1", (b, 2), (a, 1), (b, 1)))
    retry = await order.ReserveStock(reserve_request("o-1", (a, 1), (b, 3)))
    assert first == retry
    assert first.status == HELD
    assert sorted((x.sku, x.quantity) for x in first.lines) == sorted([(a, 1), (b, 3)])
    assert first.expires_at.ToDatetime(UTC) == START + timedelta(minutes=15)
    assert ((await world.level(a)).reserved, (await world.level(b)).reserved) == (1, 3)
    different = await rpc_error(order.ReserveStock(reserve_request("o-1", (a, 2))))
    assert (different.code, different.reason) == (ErrorCode.CONFLICT, "reservation_mismatch")


async def test_reservations_are_for_the_saga_not_for_shoppers(world: InventoryWorld) -> None:
    sku = unique_sku()
    await world.set_stock(sku, 10)
    shopper = world.stub(SHOPPER)
    for call in (
        shopper.ReserveStock(reserve_request("o-1", (sku, 1))),
        shopper.ReleaseStock(inventory_pb2.ReleaseStockRequest(order_id="o-1")),
        shopper.CommitStock(inventory_pb2.CommitStockRequest(order_id="o-1")),
    ):
        assert (await rpc_error(call)).code == ErrorCode.PERMISSION_DENIED
    assert (await world.level(sku)).reserved == 0


async def test_out_of_stock_names_every_short_sku_and_holds_nothing(world: InventoryWorld) -> None:
    plenty, short, unknown = unique_sku("P"), unique_sku("S"), unique_sku("U")
    await world.set_stock(plenty, 10)
    await world.set_stock(short, 2)
    error = await rpc_error(
        world.stub().ReserveStock(reserve_request("o-1", (plenty, 1), (short, 3), (unknown, 1)))
    )
    assert (error.code, error.reason, error.http_status) == (
        ErrorCode.CONFLICT,
        "out_of_stock",
        409,
    )
    assert {f.field for f in error.fields} == {short, unknown}
    assert ((await world.level(plenty)).reserved, (await world.level(short)).reserved) == (0, 0)
    # Nothing was recorded for the order: a later reserve with enough stock succeeds.
    await world.set_stock(short, 3)
    await world.set_stock(unknown, 1)
    held = await world.stub().ReserveStock(
        reserve_request("o-1", (plenty, 1), (short, 3), (unknown, 1))
    )
    assert held.status == HELD


async def test_bad_reservation_requests_name_the_field(world: InventoryWorld) -> None:
    order = world.stub()
    no_lines = await rpc_error(order.ReserveStock(reserve_request("o-1")))
    assert [f.field for f in no_lines.fields] == ["lines"]
    zero = await rpc_error(order.ReserveStock(reserve_request("o-1", ("X-1", 0))))
    assert [f.field for f in zero.fields] == ["lines.0.quantity"]
    no_order = await rpc_error(order.ReserveStock(reserve_request("", ("X-1", 1))))
    assert [f.field for f in no_order.fields] == ["order_id"]
    bad_ttl = await rpc_error(order.ReserveStock(reserve_request("o-1", ("X-1", 1), ttl=-5)))
    assert [f.field for f in bad_ttl.fields] == ["ttl_seconds"]


# --- ReleaseStock / CommitStock / expiry -----------------------------------------------------


async def test_release_and_commit_are_idempotent(world: InventoryWorld) -> None:
    sku = unique_sku()
    await world.set_stock(sku, 10, threshold=0)
    order = world.stub()
    await order.ReserveStock(reserve_request("paid", (sku, 3)))
    await order.ReserveStock(reserve_request("declined", (sku, 2)))
    for _ in range(2):
        committed = await order.CommitStock(inventory_pb2.CommitStockRequest(order_id="paid"))
        released = await order.ReleaseStock(
            inventory_pb2.ReleaseStockRequest(order_id="declined", reason="payment_declined")
        )
        assert (committed.status, released.status) == (COMMITTED, RELEASED)
    level = await world.level(sku)
    assert (level.on_hand, level.reserved, level.available) == (7, 0, 7)
    closed = await rpc_error(
        order.CommitStock(inventory_pb2.CommitStockRequest(order_id="declined"))
    )
    assert (closed.code, closed.reason) == (ErrorCode.CONFLICT, "reservation_closed")
    missing = await rpc_error(order.CommitStock(inventory_pb2.CommitStockRequest(order_id="nope")))
    assert missing.code == ErrorCode.NOT_FOUND


async def test_release_before_reserve_leaves_a_tombstone(world: InventoryWorld) -> None:
    sku = unique_sku()
    await world.set_stock(sku, 10)
    order = world.stub()
    early = await order.ReleaseStock(inventory_pb2.ReleaseStockRequest(order_id="gave-up"))
    assert (early.status, list(early.lines)) == (RELEASED, [])
    late = await rpc_error(order.ReserveStock(reserve_request("gave-up", (sku, 1))))
    assert (late.code, late.reason) == (ErrorCode.CONFLICT, "reservation_closed")
    assert (await world.level(sku)).reserved == 0


async def test_abandoned_reservations_expire(world: InventoryWorld) -> None:
    sku = unique_sku()
    await world.set_stock(sku, 10)
    order = world.stub()
    await order.ReserveStock(reserve_request("abandoned", (sku, 4), ttl=60))
    await order.ReserveStock(reserve_request("paid", (sku, 1), ttl=60))
    await order.CommitStock(inventory_pb2.CommitStockRequest(order_id="paid"))
    assert await world.inventory.expire_due() == 0  # not due yet
    world.now[0] = START + timedelta(seconds=61)
    assert await world.inventory.expire_due() == 1
    assert await world.inventory.expire_due() == 0
    level = await world.level(sku)
    assert (level.on_hand, level.reserved) == (9, 0)
    gone = await order.ReleaseStock(inventory_pb2.ReleaseStockRequest(order_id="abandoned"))
    assert gone.status == EXPIRED
    refused = await rpc_error(
        order.CommitStock(inventory_pb2.CommitStockRequest(order_id="abandoned"))
    )
    assert refused.reason == "reservation_closed"


# --- inventory.low ---------------------------------------------------------------------------


async def test_inventory_low_is_recorded_once_per_crossing(world: InventoryWorld) -> None:
    sku = unique_sku()
    await world.set_stock(sku, 10, threshold=3)
    order = world.stub()
    await order.ReserveStock(reserve_request("o-1", (sku, 6)))  # available 4: above
    assert await world.low_events() == []
    await order.ReserveStock(reserve_request("o-2", (sku, 1)))  # available 3: crossing
    await order.ReserveStock(reserve_request("o-3", (sku, 1)))  # 2: same dip, no event
    await order.ReserveStock(reserve_request("o-3", (sku, 1)))  # a retry: nothing at all
    [low] = await world.low_events()
    assert (low.sku, low.available, low.threshold) == (sku, 3, 3)
    for order_id in ("o-2", "o-3"):
        await order.ReleaseStock(inventory_pb2.ReleaseStockRequest(order_id=order_id))
    assert len(await world.low_events()) == 1  # back above the threshold: re-armed, silent
    await order.ReserveStock(reserve_request("o-4", (sku, 2)))  # available 2: a new crossing
    assert [(e.available, e.threshold) for e in await world.low_events()] == [(3, 3), (2, 3)]
    await world.set_stock(sku, 20)  # a restock well above re-arms without an event
    assert len(await world.low_events()) == 2


# --- order.created ---------------------------------------------------------------------------


def order_created(order_id: str, *lines: tuple[str, int]) -> Any:
    payload = OrderCreatedV1(
        order_id=order_id,
        user_id="u-1",
        lines=[OrderLineV1(sku=s, quantity=q, unit_price=Decimal("1.00")) for s, q in lines],
        total=Decimal(sum(q for _, q in lines)),
        currency="USD",
    )
    return build_event("order.created", payload, "order")  # type: ignore[arg-type]


async def test_order_created_marks_the_reservation_once(world: InventoryWorld) -> None:
    sku = unique_sku()
    await world.set_stock(sku, 10)
    await world.stub().ReserveStock(reserve_request("o-1", (sku, 2)))
    inbox = RelationalInbox(world.db)
    handler = order_created_handler(world.inventory)
    event = order_created("o-1", (sku, 2))
    assert await inbox.apply_once(GROUP, event, handler) is True
    world.now[0] = START + timedelta(minutes=1)
    assert await inbox.apply_once(GROUP, event, handler) is False  # redelivery: no effect
    async with world.db.session() as session:
        assert await store.order_seen_at(session, "o-1") == START
    assert (await world.level(sku)).reserved == 2


async def test_order_created_without_a_reservation_holds_its_lines(world: InventoryWorld) -> None:
    sku, scarce = unique_sku(), unique_sku("SCARCE")
    await world.set_stock(sku, 10)
    await world.set_stock(scarce, 0)
    inbox = RelationalInbox(world.db)
    handler = order_created_handler(world.inventory)
    assert await inbox.apply_once(GROUP, order_created("lost", (sku, 3)), handler)
    held = await world.stub().ReserveStock(reserve_request("lost", (sku, 3)))
    assert held.status == HELD
    assert (await world.level(sku)).reserved == 3
    # No stock to hold: logged and left to the saga (CommitStock will be refused).
    assert await inbox.apply_once(GROUP, order_created("short", (scarce, 1)), handler)
    assert (await world.level(scarce)).reserved == 0


# --- concurrency -----------------------------------------------------------------------------


async def test_concurrent_reservations_never_oversell(world: InventoryWorld) -> None:
    last, plenty = unique_sku("LAST"), unique_sku("PLENTY")
    await world.set_stock(last, 5, threshold=0)
    await world.set_stock(plenty, 1000)
    order = world.stub()

    async def attempt(n: int) -> str:
        request = reserve_request(f"rush-{n}", (plenty, 1), (last, 1))
        try:
            await order.ReserveStock(request)
        except grpc.aio.AioRpcError as exc:
            return domain_error_from_rpc(exc).reason
        return "reserved"

    outcomes = await asyncio.gather(*(attempt(n) for n in range(20)))
    assert sorted(outcomes) == ["out_of_stock"] * 15 + ["reserved"] * 5
    level, other = await world.level(last), await world.level(plenty)
    assert (level.on_hand, level.reserved, level.available) == (5, 5, 0)
    assert other.reserved == 5  # all-or-nothing: the refused orders held none of it


async def test_concurrent_retries_of_one_order_reserve_once(world: InventoryWorld) -> None:
    sku = unique_sku()
    await world.set_stock(sku, 10)
    order = world.stub()
    answers = await asyncio.gather(
        *(order.ReserveStock(reserve_request("same-order", (sku, 2))) for _ in range(8))
    )
    assert all(a == answers[0] for a in answers)
    assert (await world.level(sku)).reserved == 2
