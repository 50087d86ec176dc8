"""What the chaos tests share: the two profiles, the effect they check, child processes.

Profiles (the `profile` fixture in conftest.py):
- `embedded`: SQLite databases and the embedded log (one SQLite file every process opens);
- `production`: PostgreSQL schemas and the Kafka cluster of `.ci/backends.sh` (three nodes).

The code under test is the real one: `OutboxRelay`, `EventConsumer` with its
`RelationalInbox`, the relay's lease (`TableLease` on SQLite, the advisory lock on
PostgreSQL). A child process (`python -m tests.chaos.children ROLE SPEC`) runs a relay or a
consumer; a fault hook there writes a marker file at the named point and then waits, so the
test SIGKILLs it exactly there.

The effect every consumer applies is `record_applied`: a counter per event id (`effects`, must
end at 1) and a row per application in `applied`, whose `pos` order per key must be the order
the events were written in: nothing lost, nothing doubled, per-key order kept.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from emporium.chassis.bus.base import EventBus
from emporium.chassis.bus.embedded import EmbeddedBus
from emporium.chassis.bus.factory import open_bus
from emporium.chassis.config import url_path
from emporium.chassis.db import Database, UnitOfWork, is_postgres
from emporium.chassis.events.envelope import Event
from emporium.chassis.events.lease import Lease, TableLease, new_holder_id
from emporium.chassis.events.outbox import add_event
from emporium.chassis.events.relay import OutboxRelay, default_lease, lease_name
from emporium.chassis.events.tables import LEASE_TABLE, OUTBOX_TABLE
from tests.events_support import APPLIED, ScratchDatabase, bump_effect, effects

CAP_SECONDS = 60.0
# Shorter than production's 10 s so the tests do not wait long for a dead holder's lease (a
# SQLite relay lease, an embedded consumer's partitions) to lapse; same code, shorter clock.
LEASE_TTL = 1.5
CHILD_READY_SECONDS = 60.0


@dataclass(frozen=True)
class Profile:
    name: str  # embedded | production
    db_kind: str  # sqlite | postgresql
    pg_url: str
    bus_url: str


def open_chaos_bus(profile: Profile, client_id: str) -> EventBus:
    """The profile's bus; the embedded log with a short member lease (see LEASE_TTL)."""
    if profile.bus_url.startswith("embedded:"):
        return EmbeddedBus(url_path(profile.bus_url), lease_seconds=LEASE_TTL)
    return open_bus(profile.bus_url, client_id=client_id)


def relay_lease(database: Database, service: str) -> Lease:
    """The production lease on PostgreSQL (advisory lock), a short-lived lease row on SQLite."""
    if is_postgres(database.engine):
        return default_lease(database, service)
    return TableLease(
        database.engine, LEASE_TABLE, lease_name(service), new_holder_id(), ttl=LEASE_TTL
    )


def chaos_event(key: str, n: int) -> Event:
    return Event(source="/emporium/chaos", type="com.emporium.chaos.v1", subject=key, data={"n": n})


async def write_events(
    database: Database,
    topic: str,
    keys: Sequence[str],
    per_key: int,
    *,
    start: int = 0,
    pause: float = 0.0,
) -> list[Event]:
    """Events n = start..start+per_key-1 for every key, round-robin, one transaction each."""
    written = []
    for n in range(start, start + per_key):
        for key in keys:
            async with database.unit_of_work() as uow:
                written.append(await add_event(uow, topic, chaos_event(key, n)))
                await uow.commit()
            if pause:
                await asyncio.sleep(pause)
    return written


async def record_applied(uow: UnitOfWork, event: Event) -> None:
    """The consumer's effect: count the event, log (key, n) in application order."""
    await bump_effect(uow, event.id)
    await uow.session.execute(
        APPLIED.insert().values(key=event.subject, n=int(event.data["n"]), event_id=event.id)
    )


async def applied_in_order(database: Database) -> dict[str, list[int]]:
    async with database.session() as session:
        rows = (
            await session.execute(select(APPLIED.c.key, APPLIED.c.n).order_by(APPLIED.c.pos))
        ).all()
    by_key: dict[str, list[int]] = {}
    for key, n in rows:
        by_key.setdefault(str(key), []).append(int(n))
    return by_key


async def applied_count(database: Database) -> int:
    async with database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(APPLIED)) or 0)


async def assert_each_once_in_order(consumer_db: Database, written: Sequence[Event]) -> None:
    """Every written event applied exactly once, each key's events in the order written."""
    expected: dict[str, list[int]] = {}
    for ev in written:
        expected.setdefault(ev.subject, []).append(int(ev.data["n"]))
    assert await applied_in_order(consumer_db) == expected
    assert await effects(consumer_db) == {ev.id: 1 for ev in written}


async def unpublished(database: Database) -> int:
    t = OUTBOX_TABLE
    async with database.session() as session:
        stmt = select(func.count()).select_from(t).where(t.c.published_at.is_(None))
        return int(await session.scalar(stmt) or 0)


async def relay_all(database: Database, bus: EventBus, service: str) -> None:
    """Publish the whole outbox with a real relay (waiting for a dead holder's lease)."""
    lease = relay_lease(database, service)
    relay = OutboxRelay(database, bus, service, lease=lease)
    deadline = time.monotonic() + CAP_SECONDS
    try:
        while await unpublished(database) and time.monotonic() < deadline:
            if await relay.relay_once() == 0:
                await asyncio.sleep(0.1)
    finally:
        await lease.release()
    assert await unpublished(database) == 0


async def wait_until(
    condition: Callable[[], Awaitable[bool]], cap: float = CAP_SECONDS, what: str = ""
) -> None:
    deadline = time.monotonic() + cap
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        await asyncio.sleep(0.1)


class Child:
    """A child process running a real relay or consumer (see tests/chaos/children.py)."""

    def __init__(self, role: str, spec: dict[str, Any]) -> None:
        self.role = role
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.chaos.children", role, json.dumps(spec)],
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def wait_for(self, marker: Path, cap: float = CHILD_READY_SECONDS) -> str:
        """The marker's text once the child wrote it (it then waits to be killed)."""
        deadline = time.monotonic() + cap
        while not await asyncio.to_thread(marker.exists):
            code = self.proc.poll()
            assert code is None, f"{self.role} child exited with {code} before {marker.name}"
            assert time.monotonic() < deadline, f"{self.role} child never reached {marker.name}"
            await asyncio.sleep(0.05)
        return await asyncio.to_thread(marker.read_text)

    def kill(self) -> None:
        """SIGKILL, and reap it: nothing of its own shutdown code runs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        assert self.proc.returncode == -signal.SIGKILL, self.proc.returncode


def child_spec(profile: Profile, database: ScratchDatabase, **extra: Any) -> dict[str, Any]:
    return {
        "profile": profile.__dict__,
        "db_url": database.url,
        "schema": database.schema,
        **extra,
    }


def outbox_published(database: Database) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await unpublished(database) == 0

    return check


def all_applied(database: Database, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await applied_count(database) >= count

    return check
