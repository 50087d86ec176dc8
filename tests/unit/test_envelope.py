"""CloudEvents binary-mode envelope: what goes on the wire and what makes a poison message."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from emporium.chassis.bus.base import Delivery, Message
from emporium.chassis.events.envelope import (
    EnvelopeError,
    Event,
    encode_data,
    format_time,
    from_delivery,
    from_message,
    parse_time,
    to_message,
)


def sample(**overrides: object) -> Event:
    fields: dict[str, object] = {
        "source": "/emporium/order",
        "type": "com.emporium.order.created.v1",
        "subject": "order-42",
        "data": {"order_id": "order-42", "total": "12.50"},
        "time": datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    }
    fields.update(overrides)
    return Event(**fields)  # type: ignore[arg-type]


def delivered(message: Message) -> Delivery:
    return Delivery(message.topic, 0, 7, message.key, message.value, message.headers)


def test_binary_mode_headers_key_and_value() -> None:
    event = sample(traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    message = to_message("order.created", event)

    assert message.topic == "order.created"
    assert message.key == "order-42"
    assert json.loads(message.value) == event.data
    assert message.header("ce_specversion") == b"1.0"
    assert message.header("ce_id") == event.id.encode()
    assert message.header("ce_type") == b"com.emporium.order.created.v1"
    assert message.header("ce_source") == b"/emporium/order"
    assert message.header("ce_subject") == b"order-42"
    assert message.header("ce_time") == b"2025-01-02T03:04:05.123456Z"
    assert message.header("content-type") == b"application/json"
    assert message.header("traceparent") == event.traceparent.encode()  # type: ignore[union-attr]
    assert message.header("tracestate") is None


def test_round_trip_through_a_delivery() -> None:
    event = sample(tracestate="vendor=1", traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    assert from_delivery(delivered(to_message("order.created", event))) == event
    assert from_message(to_message("t", event)) == event


def test_encoded_data_is_deterministic() -> None:
    assert encode_data({"b": 1, "a": [1, 2]}) == b'{"a":[1,2],"b":1}'


def test_times_are_rfc3339_utc() -> None:
    seoul = timezone(timedelta(hours=9))
    assert format_time(datetime(2025, 1, 2, 12, 0, tzinfo=seoul)) == "2025-01-02T03:00:00Z"
    assert format_time(datetime(2025, 1, 2, 3, 0)) == "2025-01-02T03:00:00Z"  # naive = UTC
    assert parse_time("2025-01-02T03:00:00Z") == datetime(2025, 1, 2, 3, tzinfo=UTC)
    assert parse_time("2025-01-02T03:00:00").tzinfo is UTC


def test_unrelated_headers_are_ignored_even_when_binary() -> None:
    message = to_message("t", sample())
    noisy = Message(
        message.topic, message.key, message.value, (*message.headers, ("x-binary", b"\xff\xfe"))
    )
    assert from_message(noisy).subject == "order-42"


def test_subject_falls_back_to_the_key() -> None:
    message = to_message("t", sample())
    headers = tuple(h for h in message.headers if h[0] != "ce_subject")
    assert from_message(Message("t", "order-7", message.value, headers)).subject == "order-7"


def _broken(name: str, value: bytes | None) -> Message:
    message = to_message("t", sample())
    headers = tuple(h for h in message.headers if h[0] != name)
    if value is not None:
        headers += ((name, value),)
    return Message("t", message.key, message.value, headers)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (_broken("ce_type", None), "missing header"),
        (_broken("ce_id", None), "missing header"),
        (_broken("ce_specversion", b"0.3"), "specversion"),
        (_broken("ce_source", b"\xff"), "not UTF-8"),
        (_broken("ce_time", b"yesterday"), "malformed"),
        (Message("t", "k", b"{not json", to_message("t", sample()).headers), "malformed"),
        (Message("t", "k", b"[1, 2]", to_message("t", sample()).headers), "not a JSON object"),
        (Message("t", "k", b"{}", ()), "not a CloudEvent"),
    ],
    ids=[
        "no-type",
        "no-id",
        "old-spec",
        "binary-header",
        "bad-time",
        "bad-json",
        "array",
        "no-headers",
    ],
)
def test_invalid_records_raise_envelope_error(message: Message, error: str) -> None:
    with pytest.raises(EnvelopeError, match=error) as caught:
        from_delivery(delivered(message))
    assert caught.value.reason == "invalid_event"


def test_header_map_is_what_trace_extraction_reads() -> None:
    event = sample(traceparent="00-" + "c" * 32 + "-" + "d" * 16 + "-01")
    headers = event.header_map()
    assert headers["traceparent"] == event.traceparent
    assert headers["ce_id"] == event.id
