"""Pruning the event tables: published outbox rows and old inbox rows, in batches.

Why: both tables gain a row per event and nothing else ever removes one, so a busy service's
database would grow without bound and every index on them with it.

What may go, and when:
- An outbox row once it is *published* (`published_at` set) and older than the retention.
  An unpublished row is never touched, however old: it is an event still owed to the bus.
  With CDC instead of the relay (`EMPORIUM_OUTBOX_RELAY=off`) nothing sets `published_at`:
  Debezium read the row's insert from the WAL, which its replication slot keeps until the
  event is out whatever happens to the row (and its outbox router ignores deletes), so rows
  are pruned by `created_at` alone.
- An inbox row once it was processed longer ago than the retention. The row exists to turn a
  redelivery into a no-op, and a redelivery can only come while the bus still has the
  message: Kafka keeps a topic's messages `retention.ms` (7 days by default) and the embedded
  log the same, and a message is always older than its processing. So the inbox retention
  must be at least the bus retention; the default is the same 7 days
  (`EMPORIUM_EVENT_RETENTION_HOURS`, per service `EMPORIUM_<SERVICE>_EVENT_RETENTION_HOURS`).

How: `DELETE ... WHERE <key> IN (SELECT <key> ... LIMIT batch_size)`, one short transaction
per batch, so a service's writers (and on SQLite the single write lock) never wait long
behind a big delete; a pause between batches lets them in. The inbox has no index on
`processed_at` (adding one means a migration in every relational service), so a batch scans
until it has found `batch_size` old rows; rounds are hourly, which keeps that cheap.

Who: every replica of a service runs the task, but only the holder of the lease row
`emporium.housekeeping.<service>` (a `TableLease`, on SQLite and PostgreSQL alike) prunes in
a round, so replicas never delete the same rows at once nor lock each other out; a crashed
holder's lease lapses after its ttl.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Delete, Table, delete, select, tuple_

from emporium.chassis.db import Database
from emporium.chassis.events.lease import Lease, TableLease, new_holder_id
from emporium.chassis.events.outbox import now_utc
from emporium.chassis.events.tables import INBOX_TABLE, LEASE_TABLE, OUTBOX_TABLE
from emporium.chassis.metrics import EVENTS_PRUNED
from emporium.chassis.runtime import StopSignal

log = logging.getLogger(__name__)

DEFAULT_RETENTION_HOURS = 7 * 24.0
INTERVAL_SECONDS = 3600.0
FIRST_ROUND_MAX_DELAY_SECONDS = 60.0  # replicas started together do not all try at once
BATCH_SIZE = 1000
PAUSE_BETWEEN_BATCHES_SECONDS = 0.05
LEASE_TTL_SECONDS = 60.0


_Batch = Callable[[datetime], Delete]


def lease_name(service: str) -> str:
    return f"emporium.housekeeping.{service}"


@dataclass(frozen=True)
class Pruned:
    """Rows deleted by one round."""

    outbox: int = 0
    inbox: int = 0


class EventHousekeeper:
    """Prunes one service database's outbox and inbox; `run` is the runtime background task."""

    def __init__(
        self,
        database: Database,
        service: str,
        *,
        retention: timedelta = timedelta(hours=DEFAULT_RETENTION_HOURS),
        interval: float = INTERVAL_SECONDS,
        batch_size: int = BATCH_SIZE,
        lease: Lease | None = None,
        outbox: Table = OUTBOX_TABLE,
        inbox: Table = INBOX_TABLE,
        published_by_cdc: bool = False,
    ) -> None:
        if retention <= timedelta(0):
            raise ValueError(f"event retention must be positive, got {retention}")
        self.database = database
        self.service = service
        self.retention = retention
        self.interval = interval
        self.batch_size = batch_size
        self.lease = lease or TableLease(
            database.engine, LEASE_TABLE, lease_name(service), new_holder_id(), LEASE_TTL_SECONDS
        )
        self.outbox = outbox
        self.inbox = inbox
        self.published_by_cdc = published_by_cdc

    async def run(self, stop: StopSignal) -> None:
        """A round now and then every `interval` until `stop`; a failed round is logged and
        the next one tries again (nothing is lost by pruning late)."""
        if await stop.wait(random.uniform(0, min(FIRST_ROUND_MAX_DELAY_SECONDS, self.interval))):
            return
        while not stop.is_set():
            try:
                await self.prune_once(stop)
            except Exception:
                log.warning("event housekeeping round failed", exc_info=True)
            if await stop.wait(self.interval):
                return

    async def prune_once(self, stop: StopSignal | None = None) -> Pruned | None:
        """One round, if this replica holds the lease (None if another one does)."""
        if not await self.lease.ensure():
            return None
        try:
            cutoff = now_utc() - self.retention
            pruned = Pruned(
                outbox=await self._prune(self._outbox_batch, cutoff, "outbox", stop),
                inbox=await self._prune(self._inbox_batch, cutoff, "inbox", stop),
            )
        finally:
            await self.lease.release()
        if pruned.outbox or pruned.inbox:
            log.info(
                "pruned event tables",
                extra={"service": self.service, "outbox": pruned.outbox, "inbox": pruned.inbox},
            )
        return pruned

    async def _prune(
        self, batch: _Batch, cutoff: datetime, table: str, stop: StopSignal | None
    ) -> int:
        total = 0
        while stop is None or not stop.is_set():
            if not await self.lease.ensure():  # renewed every ttl/3; lost: stop this round
                break
            async with self.database.write() as conn:
                deleted = int((await conn.execute(batch(cutoff))).rowcount or 0)
            total += deleted
            EVENTS_PRUNED.labels(self.service, table).inc(deleted)
            if deleted < self.batch_size:
                break
            await asyncio.sleep(PAUSE_BETWEEN_BATCHES_SECONDS)
        return total

    def _outbox_batch(self, cutoff: datetime) -> Delete:
        t = self.outbox
        if self.published_by_cdc:
            old = t.c.created_at < cutoff
        else:
            old = t.c.published_at.is_not(None) & (t.c.published_at < cutoff)
        oldest = select(t.c.seq).where(old).order_by(t.c.seq).limit(self.batch_size)
        return delete(t).where(t.c.seq.in_(oldest.scalar_subquery()))

    def _inbox_batch(self, cutoff: datetime) -> Delete:
        t = self.inbox
        old = select(t.c.consumer, t.c.event_id).where(t.c.processed_at < cutoff)
        return delete(t).where(tuple_(t.c.consumer, t.c.event_id).in_(old.limit(self.batch_size)))
