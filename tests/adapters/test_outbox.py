"""Contract suite of the transactional outbox and its relay, on every relational adapter.

`[sqlite]` is a file in tmp_path, `[postgresql]` a fresh schema on the real server. The bus is
the embedded log (the bus port has its own suite); what is checked here is the store side:
the event row shares the state change's transaction, the relay publishes in seq order and
marks rows, one relay at a time holds the lease, and on PostgreSQL the SKIP LOCKED read never
waits for nor jumps over a row locked elsewhere.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from emporium.chassis.bus.base import EventBus, Message
from emporium.chassis.bus.embedded import EmbeddedBus
from emporium.chassis.db import Database
from emporium.chassis.events.envelope import Event, from_delivery
from emporium.chassis.events.outbox import add_event
from emporium.chassis.events.relay import OutboxRelay
from emporium.chassis.events.tables import OUTBOX_TABLE
from emporium.contracts.events import OrderCreatedV1, OrderLineV1
from tests.backends import backend_url
from tests.events_support import ORDERS, collect, fresh_database, unique


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    url = backend_url("postgresql") if request.param == "postgresql" else ""
    async with fresh_database(request.param, tmp_path, url) as db:
        yield db


@pytest.fixture
async def postgres(tmp_path: Path) -> AsyncIterator[Database]:
    async with fresh_database("postgresql", tmp_path, backend_url("postgresql")) as db:
        yield db


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[EmbeddedBus]:
    bus = EmbeddedBus(tmp_path / "bus.sqlite3")
    await bus.start()
    yield bus
    await bus.close()


def order_created(order_id: str, n: int = 1) -> OrderCreatedV1:
    return OrderCreatedV1(
        order_id=order_id,
        user_id="u-1",
        lines=[OrderLineV1(sku=f"SKU-{n}", quantity=n, unit_price=Decimal("2.50"))],
        total=Decimal("2.50") * n,
        currency="EUR",
    )


async def place(database: Database, topic: str, order_id: str, n: int = 1) -> Event:
    """A use case: the state change and its event in one unit of work."""
    async with database.unit_of_work() as uow:
        await uow.session.execute(ORDERS.insert().values(id=f"{order_id}#{n}", status="NEW"))
        event = await add_event(uow, topic, event_for(topic, order_id, n), source="order")
        await uow.commit()
    return event


def event_for(topic: str, order_id: str, n: int) -> Event:
    """An Event built by hand (topics are unique per test, so not the registry's topic)."""
    model = order_created(order_id, n)
    return Event(
        source="/emporium/order", type=model.event_type(), subject=order_id, data=model.to_data()
    )


async def count(database: Database, table: object, *where: object) -> int:
    async with database.session() as session:
        stmt = select(func.count()).select_from(table)  # type: ignore[arg-type]
        return int(await session.scalar(stmt.where(*where)) or 0)  # type: ignore[arg-type]


async def unpublished(database: Database) -> int:
    return await count(database, OUTBOX_TABLE, OUTBOX_TABLE.c.published_at.is_(None))


async def read_topic(bus: EventBus, topic: str, n: int) -> list[Event]:
    consumer = bus.consumer(unique("g"), [topic])
    await consumer.start()
    try:
        return [from_delivery(d) for d in await collect(consumer, n)]
    finally:
        await consumer.stop()


async def test_event_row_is_written_with_the_state_change(database: Database) -> None:
    topic = unique("order.created")
    model = order_created("o-1", 2)
    async with database.unit_of_work() as uow:
        await uow.session.execute(ORDERS.insert().values(id="o-1", status="NEW"))
        event = await add_event(uow, "order.created", model, source="order")
        await uow.commit()
    async with database.unit_of_work() as uow:
        await add_event(uow.session, topic, event_for(topic, "o-2", 1))
        await uow.commit()

    async with database.session() as session:
        row = (await session.execute(select(OUTBOX_TABLE).order_by(OUTBOX_TABLE.c.seq))).first()
    assert row is not None
    assert (row.id, row.topic, row.aggregateid) == (event.id, "order.created", "o-1")
    assert (row.aggregatetype, row.type) == ("order", "com.emporium.order.created.v1")
    assert json.loads(row.payload) == model.to_data()
    assert json.loads(row.headers)["ce_source"] == "/emporium/order"
    assert row.published_at is None
    assert await unpublished(database) == 2


async def test_event_row_rolls_back_with_the_state_change(database: Database) -> None:
    topic = unique("order.created")

    async def failing_use_case() -> None:
        async with database.unit_of_work() as uow:
            await uow.session.execute(ORDERS.insert().values(id="o-1", status="NEW"))
            await add_event(uow, topic, event_for(topic, "o-1", 1))
            raise RuntimeError("use case failed")

    with pytest.raises(RuntimeError, match="use case failed"):
        await failing_use_case()
    async with database.unit_of_work() as uow:  # left without commit: rolled back too
        await add_event(uow, topic, event_for(topic, "o-2", 1))

    assert await count(database, ORDERS) == 0
    assert await count(database, OUTBOX_TABLE) == 0


async def test_relay_publishes_in_seq_order_and_marks_rows(
    database: Database, bus: EventBus
) -> None:
    topic = unique("order.created")
    written = [await place(database, topic, f"o-{i % 3}", i) for i in range(1, 10)]
    relay = OutboxRelay(database, bus, unique("svc"), batch_size=4)

    rounds = [await relay.relay_once() for _ in range(4)]
    got = await read_topic(bus, topic, len(written))
    await relay.lease.release()

    assert rounds == [4, 4, 1, 0]
    assert sorted(e.id for e in got) == sorted(e.id for e in written)
    for key in ("o-0", "o-1", "o-2"):
        assert [e.id for e in got if e.subject == key] == [
            e.id for e in written if e.subject == key
        ]
    assert {e.id: e.data for e in got} == {e.id: e.data for e in written}
    assert {(e.source, e.type) for e in got} == {
        ("/emporium/order", "com.emporium.order.created.v1")
    }
    assert await unpublished(database) == 0
    assert await relay.backlog() == 0


async def test_only_one_relay_holds_the_lease(database: Database, bus: EventBus) -> None:
    topic = unique("order.created")
    service = unique("svc")
    await place(database, topic, "o-1")
    first = OutboxRelay(database, bus, service)
    second = OutboxRelay(database, bus, service)

    assert await first.relay_once() == 1
    await place(database, topic, "o-1", 2)
    assert await second.relay_once() == 0  # standing by: the lease is held
    assert await unpublished(database) == 1
    await first.lease.release()  # e.g. the first process shut down
    assert await second.relay_once() == 1
    assert await first.relay_once() == 0
    await second.lease.release()

    assert [e.data["lines"][0]["quantity"] for e in await read_topic(bus, topic, 2)] == [1, 2]


class FlakyBus(EventBus):
    """The real bus with publish failing the first `failures` times (a broker outage)."""

    def __init__(self, inner: EventBus, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    async def start(self) -> None: ...

    async def publish(self, messages: list[Message]) -> None:  # type: ignore[override]
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("broker unreachable")
        await self.inner.publish(messages)

    def consumer(self, group: str, topics: object) -> object:  # type: ignore[override]
        return self.inner.consumer(group, topics)  # type: ignore[arg-type]

    async def close(self) -> None: ...


async def test_rows_stay_queued_while_the_bus_fails(database: Database, bus: EventBus) -> None:
    topic = unique("order.created")
    written = [await place(database, topic, "o-1", i) for i in range(1, 4)]
    relay = OutboxRelay(database, FlakyBus(bus, failures=1), unique("svc"))

    with pytest.raises(ConnectionError):
        await relay.relay_once()
    assert await unpublished(database) == 3
    assert await relay.relay_once() == 3
    await relay.lease.release()

    assert [e.id for e in await read_topic(bus, topic, 3)] == [e.id for e in written]


async def test_skip_locked_never_waits_for_nor_jumps_a_locked_row(
    postgres: Database, bus: EventBus
) -> None:
    topic = unique("order.created")
    written = [await place(postgres, topic, "o-1", i) for i in range(1, 5)]
    relay = OutboxRelay(postgres, bus, unique("svc"))
    t = OUTBOX_TABLE

    async with postgres.engine.begin() as other:  # e.g. a stale relay's in-flight batch
        await other.execute(select(t.c.seq).where(t.c.id == written[2].id).with_for_update())
        # rows 1-2 are free, row 3 locked: publish 1-2 only (4 must not overtake 3)
        assert await asyncio.wait_for(relay.relay_once(), timeout=30) == 2
        assert await asyncio.wait_for(relay.relay_once(), timeout=30) == 0
    assert await relay.relay_once() == 2
    await relay.lease.release()

    assert [e.id for e in await read_topic(bus, topic, 4)] == [e.id for e in written]


async def test_postgres_lease_is_an_advisory_lock(postgres: Database, bus: EventBus) -> None:
    service = unique("svc")
    relay = OutboxRelay(postgres, bus, service)
    assert await relay.lease.ensure()
    async with postgres.engine.connect() as conn:
        held = await conn.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"))
        taken = await conn.scalar(
            text("SELECT pg_try_advisory_lock(hashtext(:n))"),
            {"n": f"emporium.outbox-relay.{service}"},
        )
    await relay.lease.release()
    assert held >= 1
    assert taken is False


async def test_migration_helpers_build_tables_the_relay_uses(
    database: Database, bus: EventBus
) -> None:
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    from emporium.chassis.events.migration import create_event_tables, drop_event_tables

    def migrate(sync_conn: object) -> None:
        op = Operations(MigrationContext.configure(sync_conn))  # type: ignore[arg-type]
        drop_event_tables(op)
        create_event_tables(op)

    async with database.engine.begin() as conn:
        await conn.run_sync(migrate)
    topic = unique("order.created")
    await place(database, topic, "o-1")
    relay = OutboxRelay(database, bus, unique("svc"))
    assert await relay.relay_once() == 1
    await relay.lease.release()
    assert len(await read_topic(bus, topic, 1)) == 1


async def test_an_idle_relay_is_woken_by_a_commit_not_by_its_poll(
    database: Database, bus: EventBus
) -> None:
    """The relay polls once a minute here, yet an event committed while it sleeps is
    published at once: the commit itself wakes it."""
    from emporium.chassis.runtime import StopSignal

    topic, service = unique("order.created"), unique("svc")
    stop = StopSignal()
    relay = OutboxRelay(database, bus, service, poll_interval=60)
    task = asyncio.create_task(relay.run(stop))
    try:
        for _ in range(500):  # until the relay holds the lease and went to sleep
            if relay.leader:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        await place(database, topic, "o-1", 1)
        for _ in range(1000):  # bounded wait (10 s), far below the 60 s poll
            if await unpublished(database) == 0:
                break
            await asyncio.sleep(0.01)
        assert await unpublished(database) == 0
        assert len(await read_topic(bus, topic, 1)) == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def test_run_relays_until_stopped_then_frees_the_lease(
    database: Database, bus: EventBus
) -> None:
    from emporium.chassis.runtime import StopSignal

    topic, service = unique("order.created"), unique("svc")
    for i in range(1, 4):
        await place(database, topic, "o-1", i)
    stop = StopSignal()
    task = asyncio.create_task(OutboxRelay(database, bus, service, poll_interval=0.01).run(stop))

    for _ in range(3000):  # bounded wait for the background loop, not a timing assertion
        if await unpublished(database) == 0:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=30)

    assert await unpublished(database) == 0
    successor = OutboxRelay(database, bus, service)
    await place(database, topic, "o-1", 4)
    assert await successor.relay_once() == 1  # the stopped relay let go of the lease
    await successor.lease.release()
