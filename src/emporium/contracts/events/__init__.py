"""Event payload contracts: one module per topic, versioned pydantic models, and a registry
mapping (topic, CloudEvents type) to a model. docs/asyncapi.json is generated from them
(`scripts/gen_asyncapi.py`)."""

from emporium.contracts.events.base import EventModel, event_type
from emporium.contracts.events.inventory_low import InventoryLowV1
from emporium.contracts.events.order_completed import OrderCompletedV1, PaymentStatus
from emporium.contracts.events.order_created import OrderCreatedV1, OrderLineV1
from emporium.contracts.events.product_updated import ProductUpdatedV1
from emporium.contracts.events.registry import (
    SPECS,
    EventSpec,
    UnknownEventType,
    decode,
    decode_event,
    encode,
    model_for,
    spec_for,
    topics,
)
from emporium.contracts.events.user_registered import UserRegisteredV1

__all__ = [
    "SPECS",
    "EventModel",
    "EventSpec",
    "InventoryLowV1",
    "OrderCompletedV1",
    "OrderCreatedV1",
    "OrderLineV1",
    "PaymentStatus",
    "ProductUpdatedV1",
    "UnknownEventType",
    "UserRegisteredV1",
    "decode",
    "decode_event",
    "encode",
    "event_type",
    "model_for",
    "spec_for",
    "topics",
]
