"""Every event the platform publishes: (topic, CloudEvents type) -> payload model.

Producers and consumers are recorded here too (from DESIGN.md's service table) so the AsyncAPI
document and docs/events.md come from one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from emporium.contracts.events.base import EventModel
from emporium.contracts.events.inventory_low import InventoryLowV1
from emporium.contracts.events.order_completed import OrderCompletedV1
from emporium.contracts.events.order_created import OrderCreatedV1
from emporium.contracts.events.product_updated import ProductUpdatedV1
from emporium.contracts.events.user_registered import UserRegisteredV1


@dataclass(frozen=True)
class EventSpec:
    """One version of the events on one topic."""

    model: type[EventModel]
    producer: str
    consumers: tuple[str, ...]
    summary: str

    @property
    def topic(self) -> str:
        return self.model.TOPIC

    @property
    def type(self) -> str:
        return self.model.event_type()


SPECS: tuple[EventSpec, ...] = (
    EventSpec(
        UserRegisteredV1, "user", ("notification", "recommendation"), "A user account was created."
    ),
    EventSpec(
        OrderCreatedV1,
        "order",
        ("inventory", "notification", "analytics", "recommendation"),
        "An order was placed with its stock reserved.",
    ),
    EventSpec(
        OrderCompletedV1,
        "payment",
        ("order", "notification", "analytics", "recommendation"),
        "The payment of an order reached a final state.",
    ),
    EventSpec(
        ProductUpdatedV1,
        "product",
        ("search", "recommendation", "cdn"),
        "A product was created, changed or deleted.",
    ),
    EventSpec(
        InventoryLowV1, "inventory", ("notification", "analytics"), "Stock of a SKU ran low."
    ),
)

_BY_TYPE: dict[str, EventSpec] = {spec.type: spec for spec in SPECS}


class UnknownEventType(LookupError):
    """No model is registered for a CloudEvents type (a newer version, or a stray event)."""


class TypedData(Protocol):
    """Anything carrying a CloudEvents type and JSON data (e.g. chassis.events.Event)."""

    @property
    def type(self) -> str: ...

    @property
    def data(self) -> dict[str, Any]: ...


def topics() -> list[str]:
    """The topics, in a stable order."""
    return sorted({spec.topic for spec in SPECS})


def spec_for(event_type: str) -> EventSpec:
    try:
        return _BY_TYPE[event_type]
    except KeyError:
        raise UnknownEventType(f"no event model registered for type {event_type!r}") from None


def model_for(topic: str, event_type: str) -> type[EventModel]:
    """The model of `event_type` on `topic`; UnknownEventType if that pair is not registered."""
    spec = spec_for(event_type)
    if spec.topic != topic:
        raise UnknownEventType(f"type {event_type!r} is not published on topic {topic!r}")
    return spec.model


def encode(model: EventModel) -> tuple[str, str, str, dict[str, Any]]:
    """(topic, type, subject, JSON data) of a payload: everything a CloudEvent needs."""
    return model.TOPIC, model.event_type(), model.subject(), model.to_data()


def decode(event_type: str, data: Mapping[str, Any]) -> EventModel:
    """Validate `data` as the model registered for `event_type`.

    Raises UnknownEventType or pydantic.ValidationError: for a consumer both mean a poison
    message (the consumer parks it in the dead-letter topic)."""
    return spec_for(event_type).model.model_validate(dict(data))


def decode_event(event: TypedData) -> EventModel:
    return decode(event.type, event.data)


__all__ = [
    "SPECS",
    "EventSpec",
    "TypedData",
    "UnknownEventType",
    "ValidationError",
    "decode",
    "decode_event",
    "encode",
    "model_for",
    "spec_for",
    "topics",
]
