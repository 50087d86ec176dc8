"""The shopper's journey with CDC instead of the relay (`[production-cdc]`): the production
adapters as in `test_journey.py`, every service started with `EMPORIUM_OUTBOX_RELAY=off`, and
Debezium (`.ci/debezium/`, embedded engine + outbox event router) tailing the outbox of every
producing service's PostgreSQL database into the same Kafka.

The journey itself is `test_journey.test_the_whole_journey`, unchanged: it runs here against
this platform, so it ends with the same effects. Then the CDC path itself is checked: no row
was ever relayed (the relay really was off), every outbox row reached its topic exactly once
as the relay would have published it (key, value, CloudEvents headers) in per-key order, every
consumer applied each event once (inboxes), and the sales report counts each paid order once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import select

from emporium.chassis.db import Database
from emporium.chassis.events.relay import to_message
from emporium.chassis.events.tables import INBOX_TABLE, OUTBOX_TABLE
from tests.backends import backend_url
from tests.cdc_support import Debezium, OutboxSource
from tests.e2e.platform import GATEWAY, running_platform, wait_healthy
from tests.e2e.profiles import production_env
from tests.e2e.test_journey import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    failed_calls,
    login,
    test_the_whole_journey,
)

pytestmark = [pytest.mark.e2e, pytest.mark.real_backend("debezium"), pytest.mark.timeout(600)]

# DESIGN.md's producers: the services with an outbox (and the topics they publish).
PRODUCERS = ("user", "order", "product", "payment", "inventory")
# Consumers with a relational inbox, and the topic each consumes.
INBOXES = {"order": "order.completed", "inventory": "order.created"}
CAP_SECONDS = 60.0

__all__ = ["test_the_whole_journey"]  # collected here too, against this module's platform


@dataclass
class CdcPlatform:
    env: dict[str, str]
    debezium: Debezium
    started_at: str  # RFC 3339, a little before the platform started

    def database_url(self, service: str) -> str:
        return self.env[f"EMPORIUM_{service.upper()}_DATABASE_URL"]


@pytest.fixture(scope="module")
def cdc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CdcPlatform]:
    backend_url("debezium")  # fail (CI) or skip before starting anything
    tmp: Path = tmp_path_factory.mktemp("journey-production-cdc")
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    env = {
        "EMPORIUM_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "EMPORIUM_GATEWAY_RATE_LIMIT": "1000",
        "EMPORIUM_OUTBOX_RELAY": "off",
    }
    with production_env("production") as extra:
        env.update(extra)
        sources = [OutboxSource(env[f"EMPORIUM_{s.upper()}_DATABASE_URL"]) for s in PRODUCERS]
        debezium = Debezium(sources, backend_url("kafka"), tmp / "debezium")
        with running_platform(tmp, env) as running:
            try:
                wait_healthy()  # migrated: the outbox tables exist for Debezium to tail
                asyncio.run(debezium.start())
                yield CdcPlatform(env, debezium, started_at)
            except BaseException:
                print(running.log())
                print(failed_calls())
                print(debezium.log())
                raise
            finally:
                asyncio.run(debezium.stop())


@pytest.fixture(scope="module", params=["production-cdc"])
def platform(request: pytest.FixtureRequest, cdc: CdcPlatform) -> str:
    return str(request.param)


async def outbox_rows(url: str) -> list[Any]:
    database = Database(url)
    try:
        async with database.session() as session:
            stmt = select(OUTBOX_TABLE).order_by(OUTBOX_TABLE.c.seq)
            return list((await session.execute(stmt)).all())
    finally:
        await database.close()


async def inbox_ids(url: str) -> list[str]:
    database = Database(url)
    try:
        async with database.session() as session:
            return list((await session.scalars(select(INBOX_TABLE.c.event_id))).all())
    finally:
        await database.close()


async def read_topics(topics: set[str], wanted: set[bytes]) -> list[ConsumerRecord]:
    """Every record of `topics` from the beginning to the end, once all `wanted` ids are in
    (or the cap passed: the caller's asserts say what is missing)."""
    servers = urlsplit(backend_url("kafka")).netloc
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        described = await admin.describe_topics(sorted(topics))
    finally:
        await admin.close()
    parts = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + CAP_SECONDS
        while True:
            ends = await consumer.end_offsets(parts)
            while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
                batches = await consumer.getmany(timeout_ms=500)
                records += [r for batch in batches.values() for r in batch]
            if wanted <= {ce_id(r) for r in records} or time.monotonic() > deadline:
                return records
            await asyncio.sleep(0.5)
    finally:
        await consumer.stop()


def ce_id(record: ConsumerRecord) -> bytes | None:
    return next((v for k, v in record.headers if k == "ce_id"), None)


def test_every_event_went_through_debezium_once_as_the_relay_would_publish_it(
    platform: str, cdc: CdcPlatform
) -> None:
    rows = {s: asyncio.run(outbox_rows(cdc.database_url(s))) for s in PRODUCERS}
    produced = {s: len(r) for s, r in rows.items()}
    assert all(produced.values()), f"every producer emitted during the journey: {produced}"
    relayed = [r.id for rs in rows.values() for r in rs if r.published_at is not None]
    assert relayed == [], "the built-in relay published rows although it was off"

    everything = [r for rs in rows.values() for r in rs]
    expected = {r.id.encode(): to_message(r) for r in everything}
    records = asyncio.run(read_topics({r.topic for r in everything}, set(expected)))
    cdc.debezium.assert_alive()
    ours = [r for r in records if ce_id(r) in expected]
    counts = Counter(ce_id(r) for r in ours)
    assert set(counts) == set(expected), cdc.debezium.log()
    assert set(counts.values()) == {1}, "an event reached Kafka more than once"
    for record in ours:
        message = expected[ce_id(record)]  # type: ignore[index]
        assert (record.topic, record.key, record.value) == (
            message.topic,
            message.key.encode(),
            message.value,
        )
        assert tuple(record.headers) == message.headers
    per_key: dict[tuple[str, bytes], list[bytes | None]] = defaultdict(list)
    for record in sorted(ours, key=lambda r: (r.topic, r.partition, r.offset)):
        per_key[(record.topic, record.key)].append(ce_id(record))
    for service_rows in rows.values():
        in_seq: dict[tuple[str, bytes], list[bytes]] = defaultdict(list)
        for row in service_rows:
            in_seq[(row.topic, row.aggregateid.encode())].append(row.id.encode())
        for key, ids in in_seq.items():
            assert per_key[key] == ids, f"per-key order of {key}"


def test_each_consumer_applied_each_event_once(platform: str, cdc: CdcPlatform) -> None:
    rows = {s: asyncio.run(outbox_rows(cdc.database_url(s))) for s in PRODUCERS}
    for consumer, topic in INBOXES.items():
        sent = {r.id for rs in rows.values() for r in rs if r.topic == topic}
        assert sent, f"no {topic} event in the journey"
        deadline = time.monotonic() + CAP_SECONDS
        while True:
            applied = Counter(asyncio.run(inbox_ids(cdc.database_url(consumer))))
            if sent <= set(applied) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert {i: applied[i] for i in sent} == dict.fromkeys(sent, 1), consumer

    captured = {
        r.aggregateid
        for r in rows["payment"]
        if r.topic == "order.completed" and json.loads(r.payload)["status"] == "captured"
    }
    assert captured, "the journey paid an order"
    client = httpx.Client(base_url=GATEWAY, timeout=20.0)
    admin = login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    deadline = time.monotonic() + CAP_SECONDS
    while True:  # the report is eventually consistent; each paid order counts once
        answer = client.get(
            "/api/v1/analytics/sales", params={"from": cdc.started_at}, headers=admin
        )
        assert answer.status_code == 200, answer.text
        report = answer.json()
        if report["paid_orders"] >= len(captured) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert report["paid_orders"] == len(captured)
