"""Child processes of the chaos tests: the real relay or consumer, with an optional fault.

`python -m tests.chaos.children relay|consumer '<json spec>'` (see `support.child_spec`).
A fault is a point in the real code path where the child writes `spec["marker"]` and then
sleeps, so the test can SIGKILL it exactly there:

relay:    `after_ack`       the broker acknowledged the batch, the rows are not marked yet
          `before_produce`  the rows are read (and on PostgreSQL locked), nothing sent yet
consumer: `before_db_commit`    the handler ran inside the inbox transaction, not committed
          `after_db_commit`     effect and inbox row committed, the offset not committed
          `after_offset_commit` a batch fully committed (database and offsets)

Without a fault the child runs until it is killed. A relay child appends one line per round
that published (`pid count`) to `spec["log"]`, so a test can tell which relay worked when.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from emporium.chassis.bus.base import Delivery
from emporium.chassis.db import UnitOfWork
from emporium.chassis.events.consumer import EventConsumer
from emporium.chassis.events.envelope import Event
from emporium.chassis.events.relay import OutboxRelay
from emporium.chassis.runtime import StopSignal
from tests.chaos.support import Profile, open_chaos_bus, record_applied, relay_lease
from tests.events_support import ScratchDatabase

FOREVER = 3600.0


async def stall(marker: Path, text: str) -> None:
    """Signal the test that the fault point is reached, then wait for the SIGKILL."""
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.rename(marker)  # the test never reads a half-written marker
    await asyncio.sleep(FOREVER)


class FaultyRelay(OutboxRelay):
    fault = ""
    marker = Path()
    log: Path | None = None

    async def relay_once(self) -> int:
        published = await super().relay_once()
        if published and self.log is not None:
            with self.log.open("a") as out:
                out.write(f"{os.getpid()} {published}\n")
        return published

    async def publish(self, rows: Sequence[Any]) -> None:
        if self.fault == "before_produce":
            await stall(self.marker, ",".join(str(r.seq) for r in rows))
        await super().publish(rows)

    async def mark_published(self, conn: AsyncConnection, seqs: Sequence[int]) -> None:
        if self.fault == "after_ack":
            await stall(self.marker, ",".join(map(str, seqs)))
        await super().mark_published(conn, seqs)


class FaultyConsumer(EventConsumer):
    fault = ""
    marker = Path()

    async def handle(self, delivery: Delivery, stop: StopSignal | None = None) -> bool:
        handled = await super().handle(delivery, stop)
        if handled and self.fault == "after_db_commit":
            await stall(self.marker, f"{delivery.topic}:{delivery.partition}:{delivery.offset}")
        return handled

    async def poll_once(self, stop: StopSignal | None = None) -> int:
        handled = await super().poll_once(stop)
        if handled and self.fault == "after_offset_commit":
            await stall(self.marker, str(handled))
        return handled


async def run_relay(spec: dict[str, Any]) -> None:
    profile = Profile(**spec["profile"])
    database = ScratchDatabase(spec["db_url"], spec["schema"])
    bus = open_chaos_bus(profile, client_id="chaos-relay")
    await bus.start()
    relay = FaultyRelay(
        database,
        bus,
        spec["service"],
        lease=relay_lease(database, spec["service"]),
        batch_size=int(spec.get("batch_size", 200)),
        poll_interval=0.1,
    )
    relay.fault = spec.get("fault", "")
    relay.marker = Path(spec.get("marker", "unused.marker"))
    relay.log = Path(spec["log"]) if spec.get("log") else None
    await relay.run(StopSignal())


async def run_consumer(spec: dict[str, Any]) -> None:
    profile = Profile(**spec["profile"])
    database = ScratchDatabase(spec["db_url"], spec["schema"])
    bus = open_chaos_bus(profile, client_id="chaos-consumer")
    await bus.start()
    fault, marker = spec.get("fault", ""), Path(spec.get("marker", "unused.marker"))

    async def handler(uow: UnitOfWork, event: Event) -> None:
        await record_applied(uow, event)
        if fault == "before_db_commit":
            await stall(marker, event.id)

    consumer = FaultyConsumer(
        database,
        bus,
        spec["service"],
        spec["group"],
        spec["topics"],
        handler,
        batch_size=int(spec.get("batch_size", 100)),
    )
    consumer.fault, consumer.marker = fault, marker
    await consumer.run(StopSignal())


ROLES = {"relay": run_relay, "consumer": run_consumer}


if __name__ == "__main__":
    role, raw = sys.argv[1], sys.argv[2]
    asyncio.run(ROLES[role](json.loads(raw)))
