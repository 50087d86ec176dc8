"""Pruning of the event tables (`EventHousekeeper`), on every relational adapter.

`[sqlite]` is a file in tmp_path, `[postgresql]` a fresh schema on the real server. Rows are
written with timestamps around the retention; what must hold: published outbox rows and
inbox rows older than the retention go, in batches of at most `batch_size` (one statement,
one transaction each); unpublished rows stay however old; only the lease holder prunes; the
background task prunes on its own and stops when told; services get the task wired in.
"""

from __future__ import annotations

import asyncio
import importlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from emporium.chassis.config import load_settings
from emporium.chassis.db import Database
from emporium.chassis.events.housekeeping import EventHousekeeper, Pruned, lease_name
from emporium.chassis.events.lease import TableLease
from emporium.chassis.events.tables import INBOX_TABLE, LEASE_TABLE, OUTBOX_TABLE
from emporium.chassis.runtime import StopSignal
from tests.backends import backend_url
from tests.events_support import fresh_database

RETENTION = timedelta(days=7)
NOW = datetime.now(UTC)
OLD = NOW - RETENTION - timedelta(hours=1)
YOUNG = NOW - RETENTION + timedelta(hours=1)


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    url = backend_url("postgresql") if request.param == "postgresql" else ""
    async with fresh_database(request.param, tmp_path, url) as db:
        yield db


def outbox_rows(count: int, *, created: datetime, published: datetime | None) -> list[dict]:
    return [
        {
            "id": str(uuid.uuid4()),
            "topic": "order.created",
            "aggregatetype": "order",
            "aggregateid": f"order-{i}",
            "type": "com.emporium.order.created.v1",
            "payload": "{}",
            "headers": "{}",
            "created_at": created,
            "published_at": published,
        }
        for i in range(count)
    ]


def inbox_rows(count: int, processed: datetime, consumer: str = "inventory") -> list[dict]:
    return [
        {"consumer": consumer, "event_id": str(uuid.uuid4()), "processed_at": processed}
        for _ in range(count)
    ]


async def insert(database: Database, table: Any, rows: list[dict]) -> None:
    async with database.engine.begin() as conn:
        await conn.execute(table.insert(), rows)


async def count(database: Database, table: Any, *where: Any) -> int:
    async with database.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)


async def seed(database: Database) -> None:
    await insert(database, OUTBOX_TABLE, outbox_rows(7, created=OLD, published=OLD))
    await insert(database, OUTBOX_TABLE, outbox_rows(2, created=OLD, published=YOUNG))
    await insert(database, OUTBOX_TABLE, outbox_rows(3, created=OLD, published=None))  # owed
    await insert(database, OUTBOX_TABLE, outbox_rows(2, created=YOUNG, published=YOUNG))
    await insert(database, INBOX_TABLE, inbox_rows(5, OLD) + inbox_rows(4, OLD, "analytics"))
    await insert(database, INBOX_TABLE, inbox_rows(3, YOUNG))


def housekeeper(database: Database, holder: str = "me", **kwargs: Any) -> EventHousekeeper:
    lease = TableLease(database.engine, LEASE_TABLE, lease_name("svc"), holder, ttl=60)
    return EventHousekeeper(database, "svc", retention=RETENTION, lease=lease, **kwargs)


async def test_published_outbox_rows_and_inbox_rows_past_the_retention_are_pruned(
    database: Database,
) -> None:
    await seed(database)

    pruned = await housekeeper(database).prune_once()

    assert pruned == Pruned(outbox=7, inbox=9)
    o, i = OUTBOX_TABLE.c, INBOX_TABLE.c
    assert await count(database, OUTBOX_TABLE, o.published_at.is_(None)) == 3  # never pruned
    assert await count(database, OUTBOX_TABLE, o.published_at.is_not(None)) == 4  # young ones
    assert await count(database, INBOX_TABLE) == 3
    assert await count(database, INBOX_TABLE, i.processed_at < NOW - RETENTION) == 0
    assert await housekeeper(database).prune_once() == Pruned(0, 0)  # nothing left to do


async def test_with_cdc_publishing_outbox_rows_are_pruned_by_age_alone(database: Database) -> None:
    """`EMPORIUM_OUTBOX_RELAY=off`: Debezium publishes from the WAL and never sets
    `published_at`, so age decides (the WAL keeps the insert for the slot)."""
    await seed(database)

    pruned = await housekeeper(database, published_by_cdc=True).prune_once()

    assert pruned == Pruned(outbox=12, inbox=9)  # every row created before the cutoff
    assert await count(database, OUTBOX_TABLE) == 2  # the two created after it


async def test_pruning_goes_in_batches_of_at_most_batch_size(database: Database) -> None:
    await seed(database)
    deletes: list[int] = []

    def seen(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM OUTBOX"):
            deletes.append(cursor.rowcount)

    event.listen(database.engine.sync_engine, "after_cursor_execute", seen)
    try:
        pruned = await housekeeper(database, batch_size=3).prune_once()
    finally:
        event.remove(database.engine.sync_engine, "after_cursor_execute", seen)

    assert pruned == Pruned(outbox=7, inbox=9)
    assert deletes == [3, 3, 1]  # three short transactions, not one long one


async def test_only_the_lease_holder_prunes(database: Database) -> None:
    await seed(database)
    holder = housekeeper(database, holder="replica-a")
    assert await holder.lease.ensure()  # replica a is mid-round

    assert await housekeeper(database, holder="replica-b").prune_once() is None
    assert await count(database, OUTBOX_TABLE) == 14
    assert await count(database, INBOX_TABLE) == 12

    assert await holder.prune_once() == Pruned(outbox=7, inbox=9)
    # a round gives the lease back, so another replica can do the next one
    assert await housekeeper(database, holder="replica-b").prune_once() == Pruned(0, 0)


async def test_the_background_task_prunes_by_itself_and_stops_when_told(
    database: Database,
) -> None:
    await seed(database)
    stop = StopSignal()
    task = asyncio.create_task(housekeeper(database, interval=0.05).run(stop))
    try:
        for _ in range(200):
            if await count(database, INBOX_TABLE) == 3:
                break
            await asyncio.sleep(0.05)
        assert await count(database, INBOX_TABLE) == 3
        assert await count(database, OUTBOX_TABLE) == 7
        await insert(database, INBOX_TABLE, inbox_rows(2, OLD))  # a later round gets these
        for _ in range(200):
            if await count(database, INBOX_TABLE) == 3:
                break
            await asyncio.sleep(0.05)
        assert await count(database, INBOX_TABLE) == 3
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def test_a_non_positive_retention_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="retention"):
        EventHousekeeper(
            Database(f"sqlite+aiosqlite:///{tmp_path}/x.db"), "svc", retention=timedelta(0)
        )


@pytest.mark.parametrize("name", ["user", "order", "product", "payment", "inventory"])
async def test_every_producing_service_runs_the_housekeeping_with_its_retention(
    name: str, tmp_path: Path
) -> None:
    env = {"EMPORIUM_DATA_DIR": str(tmp_path), "EMPORIUM_EVENT_RETENTION_HOURS": "240"}
    build = importlib.import_module(f"emporium.services.{name}.app").build
    app = await build(load_settings(name, env))
    try:
        keepers = [
            t.__self__
            for t in app.background
            if isinstance(getattr(t, "__self__", None), EventHousekeeper)
        ]
        assert len(keepers) == 1
        assert keepers[0].retention == timedelta(hours=240)
        assert keepers[0].service == name
    finally:
        for close in reversed(app.on_stop):
            await close()
