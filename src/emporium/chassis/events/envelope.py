"""CloudEvents 1.0 in the Kafka binary content mode, mapped onto the bus `Message`.

In the binary binding the event's attributes travel as `ce_*` headers and the message value is
the bare JSON data, so a consumer that knows nothing of CloudEvents still reads a plain JSON
payload, and Debezium's outbox router (which writes the payload as the value) produces the
same wire format as our relay. The message key is the subject (the aggregate id), which keeps
the events of one aggregate in one partition, in order.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from emporium.chassis.bus.base import Delivery, Headers, Message
from emporium.chassis.errors import DomainError, ErrorCode

SPEC_VERSION = "1.0"
JSON = "application/json"

# Headers that must be present for a delivery to be an event (others are optional).
_REQUIRED = ("ce_specversion", "ce_id", "ce_source", "ce_type")
_KNOWN = frozenset(
    (*_REQUIRED, "ce_time", "ce_subject", "content-type", "traceparent", "tracestate")
)


@dataclass
class EnvelopeError(DomainError):
    """A delivery is not a valid CloudEvent (a poison message: it goes to the dead letters)."""

    code: ErrorCode = ErrorCode.INVALID_ARGUMENT
    reason: str = "invalid_event"


@dataclass(frozen=True)
class Event:
    """One CloudEvent; `subject` is the aggregate id and becomes the Kafka key."""

    source: str
    type: str
    subject: str
    data: dict[str, Any]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: str = JSON
    traceparent: str | None = None
    tracestate: str | None = None

    def header_map(self) -> dict[str, str]:
        """All binary-mode headers as text (what `tracing.extract_headers` reads from)."""
        return {name: raw.decode() for name, raw in event_headers(self)}

    def trace_headers(self) -> dict[str, str]:
        """The W3C trace context carried with the event (empty when untraced)."""
        out: dict[str, str] = {}
        if self.traceparent:
            out["traceparent"] = self.traceparent
        if self.tracestate:
            out["tracestate"] = self.tracestate
        return out


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """Parse RFC 3339 (`Z` or an offset); a time without zone is taken as UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def encode_data(data: dict[str, Any]) -> bytes:
    """Compact, deterministic JSON (sorted keys) so equal payloads are equal bytes."""
    return json.dumps(data, separators=(",", ":"), sort_keys=True, default=str).encode()


def event_headers(event: Event) -> Headers:
    """The binary-mode headers of `event`, in a stable order."""
    pairs = [
        ("ce_specversion", SPEC_VERSION),
        ("ce_id", event.id),
        ("ce_source", event.source),
        ("ce_type", event.type),
        ("ce_time", format_time(event.time)),
        ("ce_subject", event.subject),
        ("content-type", event.datacontenttype),
        *event.trace_headers().items(),
    ]
    return tuple((name, value.encode()) for name, value in pairs)


def to_message(topic: str, event: Event) -> Message:
    """The bus message of `event`: key = subject, value = JSON data, attributes as headers."""
    return Message(
        topic=topic, key=event.subject, value=encode_data(event.data), headers=event_headers(event)
    )


def from_headers(headers: Headers, value: bytes, key: str = "") -> Event:
    """Rebuild an Event from binary-mode headers and the JSON value; EnvelopeError if invalid.

    Only the CloudEvents and trace headers are decoded: other headers (e.g. a binary one added
    by some tool) are ignored rather than turning a good event into a poison message."""
    found = {name: raw for name, raw in headers if name in _KNOWN}
    missing = [name for name in _REQUIRED if name not in found]
    if missing:
        raise EnvelopeError(f"not a CloudEvent: missing header(s) {', '.join(missing)}")
    try:
        text = {name: raw.decode() for name, raw in found.items()}
    except UnicodeDecodeError as exc:
        raise EnvelopeError(f"CloudEvent header is not UTF-8: {exc}") from None
    if text["ce_specversion"] != SPEC_VERSION:
        raise EnvelopeError(f"unsupported CloudEvents specversion {text['ce_specversion']!r}")
    try:
        data = json.loads(value) if value else {}
        moment = parse_time(text["ce_time"]) if "ce_time" in text else datetime.now(UTC)
    except ValueError as exc:
        raise EnvelopeError(f"CloudEvent {text['ce_id']} is malformed: {exc}") from None
    if not isinstance(data, dict):
        raise EnvelopeError(f"CloudEvent {text['ce_id']} data is not a JSON object")
    return Event(
        id=text["ce_id"],
        source=text["ce_source"],
        type=text["ce_type"],
        subject=text.get("ce_subject", key),
        time=moment,
        data=data,
        datacontenttype=text.get("content-type", JSON),
        traceparent=text.get("traceparent"),
        tracestate=text.get("tracestate"),
    )


def from_delivery(delivery: Delivery) -> Event:
    """The Event a consumer received; raises EnvelopeError for a poison message."""
    return from_headers(delivery.headers, delivery.value, delivery.key)


def from_message(message: Message) -> Event:
    """The Event a producer is about to publish (tests and tools)."""
    return from_headers(message.headers, message.value, message.key)
