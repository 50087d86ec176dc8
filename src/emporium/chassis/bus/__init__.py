"""The event bus port: Kafka in production, a durable SQLite log in the embedded profile."""

from emporium.chassis.bus.base import Consumer, Delivery, EventBus, Message, PartitionRevokedError

__all__ = ["Consumer", "Delivery", "EventBus", "Message", "PartitionRevokedError"]
