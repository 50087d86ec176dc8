"""Protobuf <-> REST JSON conventions shared by every resource (docs/protos.md).

Times are RFC 3339 UTC strings, enums lose their `<ENUM>_` prefix, an empty `next_cursor`
is JSON `null`, and product attributes keep their JSON scalar types through the
`AttributeValue` oneof (product and search define the same message).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

JsonScalar = str | int | float | bool | None


def rfc3339(ts: Timestamp | None) -> str | None:
    """`2024-05-01T12:00:00Z`; None for an unset timestamp."""
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    moment = ts.ToDatetime(tzinfo=UTC)
    text = moment.isoformat(timespec="milliseconds" if ts.nanos else "seconds")
    return text.replace("+00:00", "Z")


def timestamp(moment: datetime) -> Timestamp:
    """A protobuf Timestamp; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    ts = Timestamp()
    ts.FromDatetime(moment.astimezone(UTC))
    return ts


def enum_name(enum_type: Any, value: int, prefix: str) -> str:
    """`ORDER_STATUS_PAID` -> `PAID` (prefix `ORDER_STATUS_`)."""
    name: str = enum_type.Name(value)
    return name.removeprefix(prefix)


def next_cursor(value: str) -> str | None:
    return value or None


def attribute_to_json(value: Any) -> JsonScalar:
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    result: JsonScalar = getattr(value, kind)
    return result


def attributes_to_json(attributes: Any) -> dict[str, JsonScalar]:
    return {key: attribute_to_json(attributes[key]) for key in sorted(attributes)}


def fill_attributes(target: Any, attributes: dict[str, JsonScalar]) -> None:
    """Write JSON scalars into a `map<string, AttributeValue>` field."""
    for key, value in attributes.items():
        slot = target[key]
        if value is None:
            slot.null_value = True
        elif isinstance(value, bool):  # before int: bool is an int in Python
            slot.bool_value = value
        elif isinstance(value, int):
            slot.int_value = value
        elif isinstance(value, float):
            slot.double_value = value
        else:
            slot.string_value = str(value)


def product_to_json(product: Any) -> dict[str, Any]:
    """The REST product (API.md) from product's or search's `Product` message."""
    return {
        "id": product.id,
        "sku": product.sku,
        "name": product.name,
        "description": product.description,
        "category": product.category,
        "price_minor": product.price_minor,
        "currency": product.currency,
        "attributes": attributes_to_json(product.attributes),
        "image_urls": list(product.image_urls),
        "created_at": rfc3339(product.created_at),
        "updated_at": rfc3339(product.updated_at),
    }
