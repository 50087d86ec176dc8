"""Fault: the relay process is killed after the broker acknowledged a batch, before it marked
the rows sent.

A child process runs the real relay over the service's database (a SQLite file) with a hook
in `mark_published` that signals the test and then hangs; the test SIGKILLs it there. The
restarted relay (the test process, once the dead relay's lease has expired) publishes the
same rows again. The consumer then sees every event at least twice and its effect, a counter
row per event, happens exactly once. `[embedded]` is the SQLite log, `[kafka]` the real broker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from emporium.chassis.bus.factory import open_bus
from emporium.chassis.db import Database, UnitOfWork
from emporium.chassis.events.consumer import EventConsumer
from emporium.chassis.events.envelope import Event
from emporium.chassis.events.lease import TableLease, new_holder_id
from emporium.chassis.events.outbox import add_event
from emporium.chassis.events.relay import OutboxRelay, lease_name
from emporium.chassis.events.tables import LEASE_TABLE, OUTBOX_TABLE
from tests.backends import backend_url
from tests.events_support import bump_effect, effects, fresh_database, unique

pytestmark = pytest.mark.chaos

CAP_SECONDS = 60.0
LEASE_TTL = 1.0
EVENTS = 5

CHILD = """
import asyncio, sys
from pathlib import Path
from emporium.chassis.bus.factory import open_bus
from emporium.chassis.db import Database
from emporium.chassis.events.lease import TableLease, new_holder_id
from emporium.chassis.events.relay import OutboxRelay, lease_name
from emporium.chassis.events.tables import LEASE_TABLE

db_url, bus_url, service, marker, ttl = sys.argv[1:6]

class DiesBeforeMarking(OutboxRelay):
    async def mark_published(self, conn, seqs):
        Path(marker).write_text(",".join(map(str, seqs)))  # the broker has acked the batch
        await asyncio.sleep(3600)  # ...and here the process is killed

async def main():
    database = Database(db_url)
    bus = open_bus(bus_url, client_id="chaos-relay")
    await bus.start()
    lease = TableLease(database.engine, LEASE_TABLE, lease_name(service), new_holder_id(),
                       ttl=float(ttl))
    await DiesBeforeMarking(database, bus, service, lease=lease).relay_once()

asyncio.run(main())
"""


@pytest.fixture(params=["embedded", "kafka"], ids=["embedded", "kafka"])
def bus_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "embedded":
        return f"embedded://{tmp_path}/bus.sqlite3"
    return backend_url("kafka")


@pytest.fixture
async def producer_db(tmp_path: Path) -> AsyncIterator[Database]:
    async with fresh_database("sqlite", tmp_path) as db:
        yield db


@pytest.fixture
async def consumer_db(tmp_path: Path) -> AsyncIterator[Database]:
    async with fresh_database("sqlite", tmp_path) as db:
        yield db


async def write_events(database: Database, topic: str) -> list[Event]:
    written = []
    for i in range(EVENTS):
        async with database.unit_of_work() as uow:
            ev = Event(
                source="/emporium/order",
                type="com.emporium.test.v1",
                subject=f"order-{i % 2}",
                data={"n": i},
            )
            written.append(await add_event(uow, topic, ev))
            await uow.commit()
    return written


def kill_relay_between_publish_and_mark(
    db_url: str, bus_url: str, service: str, marker: Path
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, db_url, bus_url, service, str(marker), str(LEASE_TTL)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        deadline = time.monotonic() + CAP_SECONDS
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), f"relay child never published (exit code {child.poll()})"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


async def unpublished(database: Database) -> int:
    async with database.session() as session:
        t = OUTBOX_TABLE
        stmt = select(func.count()).select_from(t).where(t.c.published_at.is_(None))
        return int(await session.scalar(stmt) or 0)


async def test_relay_killed_between_publish_and_mark_has_exactly_one_effect(
    bus_url: str, producer_db: Database, consumer_db: Database, tmp_path: Path
) -> None:
    topic, group, service = unique("chaos.order"), unique("g"), unique("svc")
    written = await write_events(producer_db, topic)

    kill_relay_between_publish_and_mark(
        producer_db.url, bus_url, service, tmp_path / "published.marker"
    )
    assert await unpublished(producer_db) == EVENTS  # published, but never marked

    bus = open_bus(bus_url, client_id="chaos-test")
    await bus.start()
    try:
        lease = TableLease(
            producer_db.engine, LEASE_TABLE, lease_name(service), new_holder_id(), ttl=LEASE_TTL
        )
        restarted = OutboxRelay(producer_db, bus, service, lease=lease)
        deadline = time.monotonic() + CAP_SECONDS
        while await restarted.relay_once() == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # the dead relay's lease lapses after its ttl
        await lease.release()
        assert await unpublished(producer_db) == 0

        async def handler(uow: UnitOfWork, ev: Event) -> None:
            await bump_effect(uow, ev.id)

        consumer = EventConsumer(consumer_db, bus, service, group, [topic], handler)
        await consumer.start()
        delivered = 0
        try:
            while delivered < 2 * EVENTS and time.monotonic() < deadline + CAP_SECONDS:
                delivered += await consumer.poll_once()
        finally:
            await consumer.close()
    finally:
        await bus.close()

    assert delivered >= 2 * EVENTS  # every event arrived (at least) twice
    assert await effects(consumer_db) == {ev.id: 1 for ev in written}  # applied once each
