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

Topics are ensured explicitly (`ensure_topics`, spec from the bus URL: see `kafka_topics`)
before the first produce or subscribe; the brokers never create one implicitly.
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
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from emporium.chassis.bus.base import Consumer, Delivery, EventBus, Message, PartitionRevokedError
from emporium.chassis.bus.kafka_topics import TopicSpec
from emporium.chassis.bus.kafka_topics import ensure_topics as ensure_with_admin

METADATA_MAX_AGE_MS = 5_000
LINGER_MS = 0  # still batches whatever queues up while a request is in flight


class KafkaBus(EventBus):
    """A connection to the Kafka cluster at `bootstrap_servers` ("host:port,host2:port")."""

    def __init__(
        self,
        bootstrap_servers: str,
        client_id: str = "emporium",
        *,
        topics: TopicSpec | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.topics = topics or TopicSpec()
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

    async def ensure_topics(self, names: Iterable[str]) -> None:
        """Create (or check, see `kafka_topics`) the topics not seen yet by this bus."""
        async with self._topics_lock:
            missing = sorted(set(names) - self._known_topics)
            if not missing:
                return
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers, client_id=f"{self.client_id}-admin"
            )
            await admin.start()
            try:
                await ensure_with_admin(admin, missing, self.topics)
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
