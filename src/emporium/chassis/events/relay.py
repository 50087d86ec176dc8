"""The outbox relay: publishes committed outbox rows in `seq` order, then marks them sent.

Order of operations, and why:
1. Hold the lease (one active relay per service database): two relays would interleave the
   events of one key.
2. Read the oldest unpublished rows. On PostgreSQL they are read `FOR UPDATE SKIP LOCKED`
   inside the transaction that later marks them, so a second relay (e.g. while a lease
   changes hands) never waits behind the first; and only the contiguous prefix of the backlog
   is published, so skipping a locked row can never publish a later event of its key first.
3. Publish and wait for the broker's acknowledgement.
4. Mark the rows `published_at`.

Between rounds an idle relay sleeps `poll_interval` (1 s), but a commit in this process that
wrote an outbox row wakes it at once (`outbox.on_outbox_commit`); the poll only matters for
rows another process wrote (another replica, a crashed predecessor).

A crash or error between 3 and 4 leaves the rows unpublished: they are published again next
round (at-least-once; consumers' inboxes make the second delivery a no-op). A bus failure
leaves the rows in place and the loop backs off; the whole batch is retried in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from emporium.chassis.bus.base import EventBus, Message
from emporium.chassis.db import Database, is_postgres
from emporium.chassis.events.envelope import event_headers
from emporium.chassis.events.lease import AdvisoryLockLease, Lease, TableLease, new_holder_id
from emporium.chassis.events.outbox import event_from_row, now_utc, on_outbox_commit
from emporium.chassis.events.tables import LEASE_TABLE, OUTBOX_TABLE
from emporium.chassis.metrics import OUTBOX_BACKLOG, OUTBOX_PUBLISHED
from emporium.chassis.runtime import StopSignal

log = logging.getLogger(__name__)

BACKLOG_REFRESH_SECONDS = 1.0
STANDBY_POLL_SECONDS = 1.0  # a relay without the lease checks it this often
FIRST_ERROR_BACKOFF_SECONDS = 0.2
MAX_ERROR_BACKOFF_SECONDS = 10.0


def lease_name(service: str) -> str:
    return f"emporium.outbox-relay.{service}"


def default_lease(database: Database, service: str) -> Lease:
    """An advisory lock on PostgreSQL, a renewed lease row on SQLite."""
    if is_postgres(database.engine):
        return AdvisoryLockLease(database.engine, lease_name(service))
    return TableLease(database.engine, LEASE_TABLE, lease_name(service), new_holder_id())


def to_message(row: Any) -> Message:
    """The bus message of an outbox row: the stored payload bytes, CloudEvents headers."""
    return Message(
        topic=row.topic,
        key=row.aggregateid,
        value=row.payload.encode(),
        headers=event_headers(event_from_row(row)),
    )


async def _wait_for_either(wake: asyncio.Event, stop: StopSignal, timeout: float) -> None:
    """Until `wake` is set, `stop` is set, or `timeout` passed."""
    waiters = {
        asyncio.ensure_future(wake.wait()),
        asyncio.ensure_future(stop.wait(timeout)),
    }
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


class OutboxRelay:
    """Moves one service's outbox to the bus; `run` is the runtime's background task."""

    def __init__(
        self,
        database: Database,
        bus: EventBus,
        service: str,
        *,
        lease: Lease | None = None,
        batch_size: int = 200,
        poll_interval: float = 1.0,
        table: Table = OUTBOX_TABLE,
    ) -> None:
        self.database = database
        self.bus = bus
        self.service = service
        self.lease = lease or default_lease(database, service)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.table = table
        self._postgres = is_postgres(database.engine)
        self._backlog_at = 0.0
        self.leader = False  # whether the last round held the lease

    async def run(self, stop: StopSignal) -> None:
        """Relay until `stop`; errors (bus down, database busy) back off and retry."""
        failures = 0
        wake = asyncio.Event()
        loop = asyncio.get_running_loop()

        def woken() -> None:
            loop.call_soon_threadsafe(wake.set)

        unsubscribe = on_outbox_commit(woken)
        try:
            while not stop.is_set():
                wake.clear()  # a commit from here on wakes the next wait
                try:
                    published = await self.relay_once()
                    failures = 0
                except Exception:
                    failures += 1
                    delay = min(
                        FIRST_ERROR_BACKOFF_SECONDS * 2 ** (failures - 1), MAX_ERROR_BACKOFF_SECONDS
                    )
                    log.warning(
                        "outbox relay round failed; retrying",
                        exc_info=True,
                        extra={"service": self.service, "retry_in_s": delay},
                    )
                    await stop.wait(delay)
                    continue
                if not self.leader:
                    await stop.wait(max(self.poll_interval, STANDBY_POLL_SECONDS))
                elif published < self.batch_size:  # caught up: wait; otherwise go on at once
                    await _wait_for_either(wake, stop, self.poll_interval)
        finally:
            unsubscribe()
            try:
                await self.lease.release()
            except Exception:  # the database is gone: the lease lapses on its own
                log.warning("outbox relay could not release its lease", exc_info=True)

    async def relay_once(self) -> int:
        """One round: publish up to `batch_size` rows if we hold the lease; rows published."""
        published = 0
        self.leader = await self.lease.ensure()
        if self.leader:
            if self._postgres:
                published = await self._relay_locked_batch()
            else:
                published = await self._relay_batch()
        await self._refresh_backlog(force=published > 0)
        return published

    async def _relay_batch(self) -> int:
        """SQLite: read, publish, mark, each short, so service writes never wait on the bus."""
        async with self.database.engine.connect() as conn:
            rows = (await conn.execute(self._unpublished())).all()
        if not rows:
            return 0
        await self.publish(rows)
        async with self.database.write() as conn:
            await self.mark_published(conn, [row.seq for row in rows])
        self._count(rows)
        return len(rows)

    async def _relay_locked_batch(self) -> int:
        """PostgreSQL: lock the rows (SKIP LOCKED), publish, mark, all in one transaction."""
        async with self.database.write() as conn:
            rows = (await conn.execute(self._unpublished().with_for_update(skip_locked=True))).all()
            if not rows:
                return 0
            rows = await self._contiguous_prefix(conn, rows)
            if not rows:
                log.debug("oldest outbox rows are locked by another transaction; waiting")
                return 0
            await self.publish(rows)
            await self.mark_published(conn, [row.seq for row in rows])
        self._count(rows)
        return len(rows)

    async def _contiguous_prefix(self, conn: AsyncConnection, rows: Sequence[Any]) -> list[Any]:
        """The rows up to the first unpublished row we skipped (locked elsewhere)."""
        t = self.table
        visible = (
            await conn.scalars(
                select(t.c.seq)
                .where(t.c.published_at.is_(None), t.c.seq <= rows[-1].seq)
                .order_by(t.c.seq)
            )
        ).all()
        prefix = []
        for row, seq in zip(rows, visible, strict=False):
            if row.seq != seq:
                break
            prefix.append(row)
        return prefix

    def _unpublished(self) -> Any:
        t = self.table
        return select(t).where(t.c.published_at.is_(None)).order_by(t.c.seq).limit(self.batch_size)

    async def publish(self, rows: Sequence[Any]) -> None:
        """Publish `rows` in seq order; returns once the broker acknowledged all of them."""
        await self.bus.publish([to_message(row) for row in rows])

    async def mark_published(self, conn: AsyncConnection, seqs: Sequence[int]) -> None:
        """Set published_at on rows the broker acknowledged (a test hook for crash faults)."""
        t = self.table
        await conn.execute(
            update(t)
            .where(t.c.seq.in_(seqs), t.c.published_at.is_(None))
            .values(published_at=now_utc())
        )

    def _count(self, rows: Sequence[Any]) -> None:
        for topic, count in Counter(row.topic for row in rows).items():
            OUTBOX_PUBLISHED.labels(self.service, topic).inc(count)

    async def backlog(self) -> int:
        """Rows written but not yet published."""
        t = self.table
        async with self.database.engine.connect() as conn:
            count = await conn.scalar(
                select(func.count()).select_from(t).where(t.c.published_at.is_(None))
            )
        return int(count or 0)

    async def _refresh_backlog(self, force: bool) -> None:
        now = time.monotonic()
        if force or now - self._backlog_at >= BACKLOG_REFRESH_SECONDS:
            self._backlog_at = now
            OUTBOX_BACKLOG.labels(self.service).set(await self.backlog())
