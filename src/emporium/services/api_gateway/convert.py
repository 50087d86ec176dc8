"""Protobuf <-> REST JSON conventions shared by every resource (docs/protos.md).

Times are RFC 3339 UTC strings, enums lose their `<ENUM>_` prefix, an empty `next_cursor`
is JSON `null`, and product attributes keep their JSON scalar types through the
`AttributeValue` oneof (product and search define the same message).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

JsonScalar = str | int | float | bool | None
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)
_RFC3339 = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})[Tt]"
    r"(?P<h>[0-9]{2}):(?P<mi>[0-9]{2}):(?P<s>[0-9]{2})(?:\.(?P<f>[0-9]+))?"
    r"(?:[Zz]|(?P<sign>[+-])(?P<oh>[0-9]{2}):(?P<om>[0-9]{2}))"
)
_DAY = 86_400
# Days from 0000-01-01 to 2000-01-01 (five 400-year cycles): year 0 is read as year 2000,
# which has the same calendar, then moved back.
_YEAR_ZERO_SHIFT = 5 * 146_097


def parse_time(text: str) -> datetime:
    """An RFC 3339 date-time (JSON Schema's `date-time`: `T`, an offset or `Z`, either case,
    any fraction, years 0000-9999, a leap second at 23:59:60 UTC) as an aware UTC datetime.

    Strict on purpose: no unix numbers, no naive or date-only times, unlike pydantic's lax
    parsing. Times that fall outside what `datetime` holds once moved to UTC (year 0, or
    9999-12-31 with a negative offset) are clamped to its range instead of overflowing; a
    leap second becomes the last microsecond before it. ValueError when `text` is not one.
    """
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ValueError("not an RFC 3339 date-time")
    year, month, day, hour, minute, second = (int(m[k]) for k in ("y", "mo", "d", "h", "mi", "s"))
    offset_hours, offset_minutes = int(m["oh"] or 0), int(m["om"] or 0)
    if hour > 23 or minute > 59 or second > 60 or offset_hours > 23 or offset_minutes > 59:
        raise ValueError("time out of range")
    ordinal = date(year or 2000, month, day).toordinal() - (0 if year else _YEAR_ZERO_SHIFT)
    offset = (-1 if m["sign"] == "-" else 1) * (offset_hours * 3600 + offset_minutes * 60)
    utc_seconds = ordinal * _DAY + hour * 3600 + minute * 60 + min(second, 59) - offset
    micros = int((m["f"] or "0")[:6].ljust(6, "0"))
    if second == 60:
        if utc_seconds % _DAY != _DAY - 1:
            raise ValueError("a leap second is 23:59:60 UTC")
        micros = 999_999
    since_min = timedelta(seconds=utc_seconds - EARLIEST.toordinal() * _DAY, microseconds=micros)
    if since_min < timedelta(0):
        return EARLIEST
    if since_min > LATEST - EARLIEST:
        return LATEST
    return EARLIEST + since_min


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
