"""CDC instead of the relay: Debezium tails a real PostgreSQL outbox and publishes to real Kafka.

The rows are written by `outbox.add_event`, as the services write them; Debezium's embedded
engine (the launcher in `.ci/debezium/`, outbox event router + the CloudEvents-headers SMT)
reads them from the WAL by logical decoding and publishes them. What a consumer receives is
compared with what the built-in relay publishes for the very same rows (`OutboxRelay`, onto a
mirror topic of the same broker): same key, value, CloudEvents headers (byte for byte, in
order), partition and per-key order. An `EventConsumer` then applies each event exactly once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, text

from emporium.chassis.bus.base import Delivery, EventBus, Message
from emporium.chassis.bus.factory import open_bus
from emporium.chassis.db import Database, UnitOfWork
from emporium.chassis.events.consumer import EventConsumer
from emporium.chassis.events.envelope import Event
from emporium.chassis.events.outbox import add_event
from emporium.chassis.events.relay import OutboxRelay
from emporium.chassis.events.tables import OUTBOX_TABLE
from tests.backends import backend_url
from tests.cdc_support import Debezium, OutboxSource
from tests.events_support import (
    bump_effect,
    collect,
    effects,
    event_effect_name,
    fresh_database,
    unique,
)

pytestmark = [pytest.mark.real_backend("debezium"), pytest.mark.timeout(300)]

CAP_SECONDS = 60.0
MARKER = 99
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
async def outbox_db(tmp_path: Path) -> AsyncIterator[Database]:
    async with fresh_database("postgresql", tmp_path, backend_url("postgresql")) as db:
        yield db


@pytest.fixture
async def kafka() -> AsyncIterator[EventBus]:
    bus = open_bus(backend_url("kafka"), client_id="test-cdc")
    await bus.start()
    yield bus
    await bus.close()


class MirrorBus(EventBus):
    """Publishes what the relay hands it onto `<topic>.relay` (same broker, same partitioner)."""

    def __init__(self, inner: EventBus) -> None:
        self.inner = inner

    async def start(self) -> None:
        return None

    async def publish(self, messages: Sequence[Message]) -> None:
        mirrored = [Message(f"{m.topic}.relay", m.key, m.value, m.headers) for m in messages]
        await self.inner.publish(mirrored)

    def consumer(self, group: str, topics: Sequence[str]) -> Any:
        return self.inner.consumer(group, topics)

    async def close(self) -> None:
        return None


def make_event(key: str, n: int, traced: bool = False) -> Event:
    return Event(
        source="/emporium/order",
        type="com.emporium.order.created.v1",
        subject=key,
        data={"order_id": key, "n": n, "note": "Größe ✓"},
        traceparent=TRACEPARENT if traced else None,
        tracestate="vendor=1" if traced else None,
    )


async def write(database: Database, topic: str, event: Event) -> None:
    async with database.unit_of_work() as uow:
        await add_event(uow, topic, event)
        await uow.commit()


async def outbox_rows(database: Database) -> list[Any]:
    async with database.session() as session:
        return list(
            (await session.execute(select(OUTBOX_TABLE).order_by(OUTBOX_TABLE.c.seq))).all()
        )


async def read_all(bus: EventBus, topic: str, count: int) -> list[Delivery]:
    consumer = bus.consumer(unique("reader"), [topic])
    await consumer.start()
    try:
        return await collect(consumer, count)
    finally:
        await consumer.stop()


def by_key(deliveries: list[Delivery]) -> dict[str, list[tuple[int, bytes, tuple[Any, ...]]]]:
    """Per key, in delivery order: (partition, value, headers)."""
    out: dict[str, list[tuple[int, bytes, tuple[Any, ...]]]] = defaultdict(list)
    for d in deliveries:
        out[d.key].append((d.partition, d.value, d.headers))
    return dict(out)


def consumed(service: str, group: str, topic: str, outcome: str) -> float:
    labels = {"service": service, "group": group, "topic": topic, "outcome": outcome}
    return REGISTRY.get_sample_value("emporium_events_consumed_total", labels) or 0.0


async def schema_of(database: Database) -> str:
    async with database.session() as session:
        return str(await session.scalar(text("SELECT current_schema()")))


async def test_debezium_publishes_the_outbox_exactly_as_the_relay_does(
    outbox_db: Database, kafka: EventBus, tmp_path: Path
) -> None:
    topic = unique("order.created")
    # Written before Debezium runs: they reach Kafka through the connector's snapshot.
    for n in range(3):
        await write(outbox_db, topic, make_event("o-1", n))
    debezium = Debezium(
        [OutboxSource(backend_url("postgresql"), await schema_of(outbox_db))],
        backend_url("kafka"),
        tmp_path / "debezium",
    )
    await debezium.start()
    try:
        # Written while it runs: streamed from the WAL. Keys interleave, some commits race.
        for n in range(3, 6):
            for key in ("o-1", "o-2", "o-3"):
                await write(outbox_db, topic, make_event(key, n, traced=key == "o-2"))
        await asyncio.gather(*(write(outbox_db, topic, make_event(f"o-{k}", 9)) for k in (4, 5, 6)))
        rows = await outbox_rows(outbox_db)
        assert len(rows) == 15
        via_cdc = await read_all(kafka, topic, len(rows))

        # The relay publishes the same rows (onto `<topic>.relay`) and marks them: Debezium
        # must not turn those UPDATEs into events. One marker row per key, written after
        # them, follows in that key's partition anything Debezium made of them.
        relay = OutboxRelay(outbox_db, MirrorBus(kafka), unique("svc"))
        try:
            assert await relay.relay_once() == len(rows)
        finally:
            await relay.lease.release()
        keys = sorted({row.aggregateid for row in rows})
        for key in keys:
            await write(outbox_db, topic, make_event(key, MARKER))
        via_relay = await read_all(kafka, f"{topic}.relay", len(rows))
        after_marking = await read_all(kafka, topic, len(rows) + len(keys))
        debezium.assert_alive()
    finally:
        await debezium.stop()

    assert all(row.published_at is None for row in rows)  # nobody relayed before
    assert len(via_cdc) == len(rows), debezium.log()
    assert [d.header("ce_id") for d in via_cdc].count(None) == 0
    assert sorted(d.header("ce_id") for d in via_cdc) == sorted(r.id.encode() for r in rows)
    assert len(via_relay) == len(rows)
    # Same key, value, headers (byte for byte, in order), partition, and per-key order.
    assert by_key(via_cdc) == by_key(via_relay)
    per_key_seq: dict[str, list[bytes]] = defaultdict(list)
    for row in rows:
        per_key_seq[row.aggregateid].append(row.id.encode())
    per_key_cdc: dict[str, list[bytes | None]] = defaultdict(list)
    for d in via_cdc:
        per_key_cdc[d.key].append(d.header("ce_id"))
    assert per_key_cdc == per_key_seq
    traced = next(d for d in via_cdc if d.key == "o-2")
    assert traced.header("traceparent") == TRACEPARENT.encode()
    assert traced.header("ce_source") == b"/emporium/order"
    # Only the markers followed: the relay's UPDATEs did not become events.
    last_of_key = {d.key: json.loads(d.value)["n"] for d in after_marking}
    assert last_of_key == dict.fromkeys(keys, MARKER)
    assert len(after_marking) == len(rows) + len(keys)


async def test_a_consumer_applies_each_cdc_event_exactly_once_across_a_restart(
    outbox_db: Database, kafka: EventBus, tmp_path: Path
) -> None:
    topic, group, service = unique("order.created"), unique("g"), unique("svc")
    source = OutboxSource(backend_url("postgresql"), await schema_of(outbox_db))
    state = tmp_path / "debezium"
    debezium = Debezium([source], backend_url("kafka"), state)
    written: list[Event] = []

    async def burst(keys: Sequence[str], n: int) -> None:
        for key in keys:
            event = make_event(key, n)
            await write(outbox_db, topic, event)
            written.append(event)

    async def handler(uow: UnitOfWork, event: Event) -> None:
        await bump_effect(uow, event_effect_name(event))

    consumer = EventConsumer(outbox_db, kafka, service, group, [topic], handler)
    await consumer.start()
    try:
        await debezium.start()
        await burst(["a", "b"], 1)
        await debezium.stop(drop_slots=False)  # the slot keeps what is written meanwhile
        await burst(["a", "c"], 2)
        await debezium.start()  # resumes from its stored offset
        await burst(["b", "c"], 3)
        deadline = time.monotonic() + CAP_SECONDS
        while time.monotonic() < deadline:
            await consumer.poll_once()
            if consumed(service, group, topic, "processed") >= len(written):
                break
        debezium.assert_alive()
    finally:
        await consumer.close()
        await debezium.stop()

    assert await effects(outbox_db) == {event_effect_name(e): 1 for e in written}, debezium.log()
    assert consumed(service, group, topic, "processed") == len(written)
