"""Outbox relay throughput: events/s from committed outbox rows to acknowledged bus messages,
and to a consumer that applied them through its inbox.

Not a test: it prints JSON lines plus one human line per combination and asserts nothing.
Databases: SQLite (temporary file) and, when EMPORIUM_TEST_POSTGRES_URL is set, PostgreSQL (a
temporary schema). Buses: the embedded log and, when EMPORIUM_TEST_KAFKA_URL is set, Kafka.

    python bench/outbox_relay.py [--events N] [--batch B]

"write" commits N use-case transactions of one event each; "relay" drains those N rows
(publish, await acks, mark); "end_to_end" writes N more rows, then runs the relay and an
idempotent consumer (inbox in its own SQLite file) together until the consumer applied all N.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text

from _util import machine
from emporium.chassis.bus.base import EventBus
from emporium.chassis.bus.factory import open_bus
from emporium.chassis.db import Database, create_engine
from emporium.chassis.events.consumer import EventConsumer
from emporium.chassis.events.envelope import Event
from emporium.chassis.events.outbox import add_event
from emporium.chassis.events.relay import OutboxRelay
from emporium.chassis.events.tables import EVENT_METADATA
from emporium.chassis.runtime import StopSignal

PAYLOAD = {"order_id": "0000", "total": "12.50", "lines": [{"sku": "SKU-1", "quantity": 1}]}


def emit(combo: str, metric: str, events: int, batch: int, seconds: float) -> float:
    rate = events / seconds
    print(
        json.dumps(
            {
                "bench": "outbox_relay",
                "adapter": combo,
                "metric": metric,
                "events": events,
                "batch": batch,
                "seconds": round(seconds, 4),
                "events_per_second": round(rate, 1),
            }
        ),
        flush=True,
    )
    return rate


@asynccontextmanager
async def database(kind: str, tmp: str) -> AsyncIterator[Database]:
    if kind == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp}/{uuid.uuid4().hex[:8]}.sqlite3")
        schema = ""
    else:
        url = os.environ["EMPORIUM_TEST_POSTGRES_URL"]
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(url)
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        await admin.dispose()
        db = Database(url, connect_args={"server_settings": {"search_path": schema}})
    async with db.engine.begin() as conn:
        await conn.run_sync(EVENT_METADATA.create_all)
    try:
        yield db
    finally:
        if schema:
            async with db.engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await db.close()


async def write(db: Database, topic: str, count: int) -> None:
    for i in range(count):
        async with db.unit_of_work() as uow:
            event = Event(
                source="/emporium/bench",
                type="com.emporium.bench.v1",
                subject=f"order-{i % 64}",
                data=PAYLOAD,
            )
            await add_event(uow, topic, event)
            await uow.commit()


async def drain(relay: OutboxRelay) -> None:
    while await relay.relay_once():
        pass


async def end_to_end(
    db: Database, bus: EventBus, topic: str, count: int, batch: int, tmp: str
) -> float:
    inbox_db = Database(f"sqlite+aiosqlite:///{tmp}/inbox-{uuid.uuid4().hex[:8]}.sqlite3")
    async with inbox_db.engine.begin() as conn:
        await conn.run_sync(EVENT_METADATA.create_all)
    applied = 0

    async def handler(_: Any, __: Event) -> None:
        nonlocal applied
        applied += 1

    service = f"bench-e2e-{uuid.uuid4().hex[:6]}"
    consumer = EventConsumer(
        inbox_db, bus, service, f"{service}-g", [topic], handler, batch_size=500
    )
    relay = OutboxRelay(db, bus, service, batch_size=batch, poll_interval=0.01)
    await consumer.start()
    stop = StopSignal()
    try:
        await write(db, topic, count)
        t0 = time.perf_counter()
        relaying = asyncio.create_task(relay.run(stop))
        while applied < count:
            await consumer.poll_once()
        seconds = time.perf_counter() - t0
        stop.set()
        await relaying
    finally:
        await consumer.close()
        await inbox_db.close()
    return seconds


async def bench(
    db_kind: str, bus_kind: str, bus_url: str, count: int, batch: int, tmp: str
) -> None:
    combo = f"{db_kind}+{bus_kind}"
    bus = open_bus(bus_url, client_id="bench-relay")
    await bus.start()
    try:
        async with database(db_kind, tmp) as db:
            topic = f"bench.outbox.{uuid.uuid4().hex[:8]}"
            relay = OutboxRelay(db, bus, f"bench-{uuid.uuid4().hex[:6]}", batch_size=batch)
            await write(db, topic, 1)
            await drain(relay)  # topic created, lease taken, outside the timing
            t0 = time.perf_counter()
            await write(db, topic, count)
            write_rate = emit(combo, "write", count, 1, time.perf_counter() - t0)
            t0 = time.perf_counter()
            await drain(relay)
            relay_rate = emit(combo, "relay", count, batch, time.perf_counter() - t0)
            await relay.lease.release()
            seconds = await end_to_end(db, bus, topic + ".e2e", count, batch, tmp)
            e2e_rate = emit(combo, "end_to_end", count, batch, seconds)
    finally:
        await bus.close()
    print(
        f"{combo:20s} {count} events, batch {batch}: write {write_rate:8,.0f}/s   "
        f"relay {relay_rate:8,.0f}/s   outbox->inbox {e2e_rate:8,.0f}/s",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    dbs = ["sqlite"] + (["postgresql"] if os.environ.get("EMPORIUM_TEST_POSTGRES_URL") else [])
    print(f"# outbox relay throughput on {machine()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        buses = [("embedded", f"embedded://{tmp}/bus.sqlite3")]
        if os.environ.get("EMPORIUM_TEST_KAFKA_URL"):
            buses.append(("kafka", os.environ["EMPORIUM_TEST_KAFKA_URL"]))
        for db_kind in dbs:
            for bus_kind, url in buses:
                await bench(db_kind, bus_kind, url, args.events, args.batch, tmp)
    if len(dbs) == 1:
        print("postgresql skipped (no EMPORIUM_TEST_POSTGRES_URL)")
    if len(buses) == 1:
        print("kafka skipped (no EMPORIUM_TEST_KAFKA_URL)")


if __name__ == "__main__":
    asyncio.run(main())
