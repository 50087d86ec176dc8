"""The small interface both bus adapters implement.

Semantics the code relies on (and the contract suite in tests/adapters/test_bus.py checks on
every adapter): topics; messages of one key are delivered in publish order; consumer groups,
each seeing every message; offsets committed explicitly by the consumer; whatever was not
committed is delivered again to the group's next consumer (after a crash or restart).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Message:
    """What a producer hands to the bus: the key is the aggregate id (order id, sku...)."""

    topic: str
    key: str
    value: bytes
    headers: Headers = ()

    def header(self, name: str) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


@dataclass(frozen=True)
class Delivery:
    """A message as a consumer receives it, with the position to commit once handled."""

    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    headers: Headers = field(default=())
    timestamp_ms: int = 0

    def header(self, name: str) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


class PartitionRevokedError(RuntimeError):
    """`commit` refused: the delivery's partition now belongs to another member of the group
    (a rebalance, or this member stalled past its session). Nothing was committed; the new
    owner redelivers from the committed offset, so the caller just moves on (or calls
    `seek_to_committed`). Kafka's CommitFailedError, under one name for both adapters."""


class Consumer(ABC):
    """One member of a consumer group reading some topics."""

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def fetch(self, max_records: int = 100, timeout: float = 0.5) -> list[Delivery]:
        """Next deliveries in order (may be empty after `timeout` seconds)."""

    @abstractmethod
    async def commit(self, delivery: Delivery) -> None:
        """Mark `delivery` and everything before it in its partition as handled.

        Raises PartitionRevokedError if the partition was reassigned meanwhile."""

    @abstractmethod
    async def seek_to_committed(self) -> None:
        """Forget fetched-but-uncommitted deliveries: the next fetch starts again after the
        last committed offset (used after a handler failure, so nothing is skipped)."""

    async def lag(self) -> int:
        """Messages the group has not committed yet on this member's partitions (best effort)."""
        return 0

    @abstractmethod
    async def stop(self) -> None: ...


class EventBus(ABC):
    """A connection to the bus; `publish` returns only once the broker has the messages."""

    @abstractmethod
    async def start(self) -> None: ...

    async def ensure_topics(self, names: Iterable[str]) -> None:  # noqa: B027 - optional
        """Make sure `names` exist before they are used (Kafka creates or checks them as its
        URL says; the embedded log makes a topic at its first message, so it does nothing)."""

    @abstractmethod
    async def publish(self, messages: Sequence[Message]) -> None:
        """Durably append `messages`, keeping their order within each key; raises on failure."""

    @abstractmethod
    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        """A new (not yet started) member of consumer group `group`."""

    @abstractmethod
    async def close(self) -> None: ...
