"""The production event bus: Apache Kafka through aiokafka.

The producer is idempotent with `acks="all"`, so a retried send never duplicates or reorders
a partition, and `publish` awaits every broker acknowledgement before returning (the outbox
relay marks rows published only after that). Retries are the producer's own: a batch that
fails with a retriable error (leader change, broker restart, timeout) is resent every
`retry_backoff_ms` until it is `request_timeout_ms` old; only then does `publish` raise, and
the outbox relay tries again later (the idempotent producer keeps resends from duplicating).

Messages are keyed by aggregate id, so the default (murmur2, as in the Java client)
partitioner keeps one aggregate's events in one partition, in order. Consumers never
auto-commit: offsets are committed by the caller after its own transaction (committing
delivery N commits everything up to N in its partition), which is what makes redelivery
after a crash safe. A commit on a partition the group moved to another member raises
`PartitionRevokedError`.

Topics are created explicitly (`ensure_topics`) before the first produce or subscribe: with
broker-side auto-creation alone, a consumer that subscribes before the topic exists waits a
metadata refresh before it sees any partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaError,
    TopicAlreadyExistsError,
    for_code,
)

from emporium.chassis.bus.base import Consumer, Delivery, EventBus, Message, PartitionRevokedError

DEFAULT_PARTITIONS = 3
METADATA_MAX_AGE_MS = 5_000
LINGER_MS = 0  # still batches whatever queues up while a request is in flight
LEADER_WAIT_SECONDS = 10.0


class KafkaBus(EventBus):
    """A connection to the Kafka cluster at `bootstrap_servers` ("host:port,host2:port")."""

    def __init__(
        self,
        bootstrap_servers: str,
        client_id: str = "emporium",
        *,
        partitions: int = DEFAULT_PARTITIONS,
        replication_factor: int = 1,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.partitions = partitions
        self.replication_factor = replication_factor
        self._producer: Any = None
        self._known_topics: set[str] = set()
        self._topics_lock = asyncio.Lock()
        self._consumers: weakref.WeakSet[KafkaConsumer] = weakref.WeakSet()

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=LINGER_MS,
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
        )
        await producer.start()
        self._producer = producer

    async def ensure_topics(self, names: Iterable[str], partitions: int | None = None) -> None:
        """Create the topics not seen yet by this bus (an existing topic is fine)."""
        async with self._topics_lock:
            missing = sorted(set(names) - self._known_topics)
            if not missing:
                return
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers, client_id=f"{self.client_id}-admin"
            )
            await admin.start()
            try:
                response = await admin.create_topics(
                    [
                        NewTopic(name, partitions or self.partitions, self.replication_factor)
                        for name in missing
                    ]
                )
                for topic, code, *_ in response.topic_errors:
                    error = for_code(code)
                    if code != 0 and error is not TopicAlreadyExistsError:
                        raise error(f"cannot create topic {topic!r}")
                await _wait_for_leaders(admin, missing)
            finally:
                await admin.close()
            self._known_topics.update(missing)

    async def publish(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        if self._producer is None:
            raise RuntimeError("KafkaBus.publish before start()")
        await self.ensure_topics({m.topic for m in messages})
        # send() only enqueues (in order, per partition); the returned futures resolve on
        # the broker's acknowledgement, and any failure is raised from gather.
        acks = [
            await self._producer.send(
                m.topic, m.value, key=m.key.encode("utf-8"), headers=list(m.headers)
            )
            for m in messages
        ]
        await asyncio.gather(*acks)

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        consumer = KafkaConsumer(self, group, topics)
        self._consumers.add(consumer)
        return consumer

    async def close(self) -> None:
        """Stop the consumers still running (leaving their groups), then flush the producer."""
        for consumer in list(self._consumers):
            with contextlib.suppress(KafkaError):
                await consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


async def _wait_for_leaders(admin: AIOKafkaAdminClient, topics: list[str]) -> None:
    """Wait (briefly) until every partition of a new topic has a leader, so the first
    produce does not bounce off NotLeaderForPartition; past the cap the client's own retries
    take over."""
    deadline = asyncio.get_running_loop().time() + LEADER_WAIT_SECONDS
    while asyncio.get_running_loop().time() < deadline:
        described = await admin.describe_topics(topics)
        if all(
            t["error_code"] == 0
            and t["partitions"]
            and all(p["error_code"] == 0 and p["leader"] >= 0 for p in t["partitions"])
            for t in described
        ):
            return
        await asyncio.sleep(0.05)


def _delivery(record: ConsumerRecord) -> Delivery:
    return Delivery(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key.decode("utf-8") if record.key is not None else "",
        value=record.value if record.value is not None else b"",
        headers=tuple((k, v if v is not None else b"") for k, v in record.headers),
        timestamp_ms=record.timestamp,
    )


class KafkaConsumer(Consumer):
    """A member of Kafka consumer group `group`; partitions are assigned by the broker."""

    def __init__(self, bus: KafkaBus, group: str, topics: Sequence[str]) -> None:
        self.bus = bus
        self.group = group
        self.topics = list(dict.fromkeys(topics))
        self._consumer: Any = None

    async def start(self) -> None:
        await self.bus.ensure_topics(self.topics)
        consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bus.bootstrap_servers,
            client_id=self.bus.client_id,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
        )
        await consumer.start()
        self._consumer = consumer

    async def fetch(self, max_records: int = 100, timeout: float = 0.5) -> list[Delivery]:
        batches = await self._running().getmany(
            timeout_ms=int(timeout * 1000), max_records=max_records
        )
        return [_delivery(r) for records in batches.values() for r in records]

    async def commit(self, delivery: Delivery) -> None:
        tp = TopicPartition(delivery.topic, delivery.partition)
        try:
            await self._running().commit({tp: delivery.offset + 1})
        except (CommitFailedError, IllegalStateError) as exc:
            raise PartitionRevokedError(
                f"group {self.group!r} no longer owns {tp.topic!r}[{tp.partition}]: {exc}"
            ) from exc

    async def seek_to_committed(self) -> None:
        consumer = self._running()
        for tp in consumer.assignment():
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)

    async def lag(self) -> int:
        """End offset minus the group's committed offset, summed over assigned partitions."""
        consumer = self._running()
        assigned = list(consumer.assignment())
        if not assigned:
            return 0
        ends = await consumer.end_offsets(assigned)
        total = 0
        for tp in assigned:
            committed = await consumer.committed(tp)
            if committed is None:
                committed = await consumer.beginning_offsets([tp])
                committed = committed[tp]
            total += max(int(ends[tp]) - int(committed), 0)
        return total

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    def _running(self) -> Any:
        if self._consumer is None:
            raise RuntimeError("KafkaConsumer used before start()")
        return self._consumer
