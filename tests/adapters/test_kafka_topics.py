"""Kafka topics as the seed runs them, on the real cluster from `.ci/backends.sh` (three
KRaft nodes): the adapter creates what it uses with the bus URL's spec (default: three
replicas, `min.insync.replicas=2`), the brokers create nothing by themselves, and with
`create_topics=false` a missing topic is an error that names it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from emporium.chassis.bus.base import Message
from emporium.chassis.bus.factory import open_bus
from emporium.chassis.bus.kafka_topics import TopicSpecError
from emporium.chassis.events.consumer import dead_letter_topic
from emporium.contracts.events.registry import SPECS
from tests.backends import backend_url
from tests.events_support import unique

SEED_TOPICS = sorted({spec.topic for spec in SPECS})


@pytest.fixture
def kafka_url() -> str:
    return backend_url("kafka")


@pytest.fixture
async def admin(kafka_url: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=urlsplit(kafka_url).netloc)
    await client.start()
    yield client
    await client.close()


async def replicas_and_min_isr(admin: AIOKafkaAdminClient, topic: str) -> tuple[set[int], str]:
    (described,) = await admin.describe_topics([topic])
    assert described["error_code"] == 0, described
    replica_counts = {len(p["replicas"]) for p in described["partitions"]}
    (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    entries = response.resources[0][4]
    return replica_counts, next(e[1] for e in entries if e[0] == "min.insync.replicas")


async def test_the_seed_topics_and_their_dead_letters_have_three_replicas_two_in_sync(
    kafka_url: str, admin: AIOKafkaAdminClient
) -> None:
    assert len(SEED_TOPICS) == 5
    bus = open_bus(kafka_url, client_id="test-topics")
    await bus.start()
    try:
        await bus.ensure_topics([*SEED_TOPICS, *map(dead_letter_topic, SEED_TOPICS)])
    finally:
        await bus.close()

    for topic in [*SEED_TOPICS, *map(dead_letter_topic, SEED_TOPICS)]:
        assert await replicas_and_min_isr(admin, topic) == ({3}, "2"), topic


async def test_a_first_publish_creates_its_topic_with_the_spec_of_the_url(
    kafka_url: str, admin: AIOKafkaAdminClient
) -> None:
    topic = unique("spec")
    sep = "&" if "?" in kafka_url else "?"
    bus = open_bus(f"{kafka_url}{sep}partitions=2", client_id="test-topics")
    await bus.start()
    try:
        await bus.publish([Message(topic, "k", b"v")])
    finally:
        await bus.close()

    (described,) = await admin.describe_topics([topic])
    assert len(described["partitions"]) == 2
    assert await replicas_and_min_isr(admin, topic) == ({3}, "2")


async def test_the_brokers_create_no_topic_by_themselves(
    kafka_url: str, admin: AIOKafkaAdminClient
) -> None:
    topic = unique("implicit")
    (described,) = await admin.describe_topics([topic])  # a metadata request for it

    assert described["error_code"] == 3  # UNKNOWN_TOPIC_OR_PARTITION: not auto-created
    assert topic not in await admin.list_topics()


async def test_without_create_topics_a_missing_topic_is_an_error_naming_it(
    kafka_url: str, admin: AIOKafkaAdminClient
) -> None:
    topic = unique("absent")
    sep = "&" if "?" in kafka_url else "?"
    bus = open_bus(f"{kafka_url}{sep}create_topics=false", client_id="test-topics")
    await bus.start()
    try:
        with pytest.raises(TopicSpecError, match=topic):
            await bus.publish([Message(topic, "k", b"v")])
    finally:
        await bus.close()
    assert topic not in await admin.list_topics()


async def test_a_replication_factor_the_cluster_cannot_hold_is_refused_with_advice(
    kafka_url: str,
) -> None:
    sep = "&" if "?" in kafka_url else "?"
    bus = open_bus(f"{kafka_url}{sep}replication_factor=7", client_id="test-topics")
    await bus.start()
    try:
        with pytest.raises(TopicSpecError, match="replication_factor=N"):
            await bus.ensure_topics([unique("too-wide")])
    finally:
        await bus.close()
