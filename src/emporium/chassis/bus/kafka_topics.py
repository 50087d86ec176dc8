"""Who creates the Kafka topics, and with what: one spec, used the same in CI and production.

The brokers do not create topics implicitly (`auto.create.topics.enable=false` in CI and in
the cluster manifests): a topic made by a first produce would get whatever the broker's
defaults are, and a typo would make a new topic. Instead the adapter ensures the topics it
uses before it uses them (a consumer: its topics and their dead-letter topics at start; a
producer: a topic at its first publish), according to the bus URL:

`kafka://b1:9092,b2:9092,b3:9092?partitions=3&replication_factor=3&min_insync_replicas=2`

Those are also the defaults, the seed's production values: every partition on three brokers,
and with the producer's `acks=all` a write is acknowledged once two replicas have it, so one
broker may be down (or restarting) without refusing or losing a write.

`create_topics=false` (e.g. when Strimzi `KafkaTopic` resources own the topics) makes the
adapter only check: a missing topic is then an error naming it. Either way a topic found with
fewer replicas or a lower `min.insync.replicas` than the spec is logged as a warning (it still
works, with weaker durability), so a cluster that disagrees with the code is visible.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    InvalidReplicationFactorError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    for_code,
)

log = logging.getLogger(__name__)

LEADER_WAIT_SECONDS = 10.0
MIN_ISR = "min.insync.replicas"


@dataclass(frozen=True)
class TopicSpec:
    """How topics are created (and what an existing topic is expected to have)."""

    partitions: int = 3
    replication_factor: int = 3
    min_insync_replicas: int = 2
    create: bool = True

    def __post_init__(self) -> None:
        if self.partitions < 1 or self.replication_factor < 1:
            raise ValueError(f"partitions and replication_factor must be >= 1: {self}")
        if not 1 <= self.min_insync_replicas <= self.replication_factor:
            raise ValueError(
                f"min_insync_replicas must be between 1 and replication_factor: {self}"
            )


class TopicSpecError(RuntimeError):
    """A topic cannot be had as the bus URL asks (missing, or the cluster is too small)."""


async def ensure_topics(admin: AIOKafkaAdminClient, names: Sequence[str], spec: TopicSpec) -> None:
    """Create (or, with `spec.create` off, only look for) `names`; returns once every
    partition has a leader, so the first produce does not bounce off NotLeaderForPartition."""
    if spec.create:
        await _create(admin, names, spec)
    described = await _wait_for_leaders(admin, names, spec)
    await _warn_on_weaker_topics(admin, described, spec)


async def _create(admin: AIOKafkaAdminClient, names: Sequence[str], spec: TopicSpec) -> None:
    configs = {MIN_ISR: str(spec.min_insync_replicas)}
    response = await admin.create_topics(
        [
            NewTopic(n, spec.partitions, spec.replication_factor, topic_configs=configs)
            for n in names
        ]
    )
    for topic, code, *rest in response.topic_errors:
        error = for_code(code)
        if code == 0 or error is TopicAlreadyExistsError:
            continue
        detail = rest[0] if rest and rest[0] else error.__name__
        if error is InvalidReplicationFactorError:
            raise TopicSpecError(
                f"cannot create topic {topic!r} with replication factor "
                f"{spec.replication_factor}: {detail} (a smaller cluster needs "
                f"?replication_factor=N&min_insync_replicas=M in the bus URL)"
            )
        raise error(f"cannot create topic {topic!r}: {detail}")


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, names: Sequence[str], spec: TopicSpec
) -> list[dict[str, Any]]:
    """The topics' descriptions once all partitions have leaders (or after the cap, when the
    client's own retries take over)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LEADER_WAIT_SECONDS
    while True:
        described: list[dict[str, Any]] = await admin.describe_topics(list(names))
        missing = [
            t["topic"]
            for t in described
            if for_code(t["error_code"]) is UnknownTopicOrPartitionError
        ]
        if missing and not spec.create:
            raise TopicSpecError(
                f"Kafka topics {', '.join(sorted(missing))} do not exist and the bus URL says "
                f"create_topics=false: create them (deploy/kafka KafkaTopic resources) first"
            )
        if not missing and all(_has_leaders(t) for t in described):
            return described
        if loop.time() >= deadline:
            return described
        await asyncio.sleep(0.05)


def _has_leaders(topic: dict[str, Any]) -> bool:
    partitions = topic["partitions"]
    return (
        topic["error_code"] == 0
        and bool(partitions)
        and all(p["error_code"] == 0 and p["leader"] >= 0 for p in partitions)
    )


async def _warn_on_weaker_topics(
    admin: AIOKafkaAdminClient, described: list[dict[str, Any]], spec: TopicSpec
) -> None:
    present = [t for t in described if t["error_code"] == 0 and t["partitions"]]
    for topic in present:
        replicas = min(len(p["replicas"]) for p in topic["partitions"])
        if replicas < spec.replication_factor:
            log.warning(
                "Kafka topic %s has %d replicas, the bus URL asks for %d",
                topic["topic"],
                replicas,
                spec.replication_factor,
            )
    if not present:
        return
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, t["topic"]) for t in present]
    )
    for response in responses:
        for _code, _message, _type, name, entries, *_ in response.resources:
            value = next((e[1] for e in entries if e[0] == MIN_ISR), None)
            if value is not None and int(value) < spec.min_insync_replicas:
                log.warning(
                    "Kafka topic %s has min.insync.replicas=%s, the bus URL asks for %d",
                    name,
                    value,
                    spec.min_insync_replicas,
                )
