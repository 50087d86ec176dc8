"""The AsyncAPI 2.6 document of every topic, built from the registry and the pydantic models.

Written to docs/asyncapi.json by `scripts/gen_asyncapi.py` (CI runs it with `--check`). The
document is from a consumer's point of view: each channel (topic) has a `subscribe` operation
listing the message versions that can arrive on it. Messages use the CloudEvents Kafka binary
binding: attributes in `ce_*` headers (described per message, with `ce_type` fixed to its
version), the JSON data as the value, the aggregate id as the Kafka key.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from emporium.contracts.events.registry import SPECS, EventSpec, topics

ASYNCAPI_VERSION = "2.6.0"
KAFKA_BINDING_VERSION = "0.4.0"
REF_TEMPLATE = "#/components/schemas/{model}"


def _headers_schema(spec: EventSpec) -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "type": "object",
        "required": ["ce_specversion", "ce_id", "ce_source", "ce_type"],
        "properties": {
            "ce_specversion": {"type": "string", "const": "1.0"},
            "ce_id": {**text, "description": "Event id, unique per event (idempotency key)."},
            "ce_source": {**text, "description": "Producing service, `/emporium/<service>`."},
            "ce_type": {"type": "string", "const": spec.type},
            "ce_time": {**text, "format": "date-time"},
            "ce_subject": {
                **text,
                "description": f"Aggregate id (`{spec.model.KEY_FIELD}`), equal to the key.",
            },
            "content-type": {"type": "string", "const": "application/json"},
            "traceparent": {**text, "description": "W3C trace context of the producer."},
            "tracestate": text,
        },
    }


def _message(spec: EventSpec) -> dict[str, Any]:
    model = spec.model
    return {
        "name": spec.type,
        "title": model.__name__,
        "summary": spec.summary,
        "contentType": "application/json",
        "headers": _headers_schema(spec),
        "payload": {"$ref": REF_TEMPLATE.format(model=model.__name__)},
        "correlationId": {"location": "$message.header#/ce_id"},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": f"The `{model.KEY_FIELD}`."},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _channel(topic: str) -> dict[str, Any]:
    specs = [s for s in SPECS if s.topic == topic]
    producers = sorted({s.producer for s in specs})
    consumers = sorted({c for s in specs for c in s.consumers})
    refs = [{"$ref": f"#/components/messages/{s.model.__name__}"} for s in specs]
    return {
        "description": f"{specs[0].summary} Produced by {', '.join(producers)} "
        f"(transactional outbox); consumed by {', '.join(consumers)}. "
        f"Dead letters go to `{topic}.dlq`.",
        "x-producers": producers,
        "x-consumers": consumers,
        "subscribe": {
            "operationId": "on_" + topic.replace(".", "_"),
            "message": refs[0] if len(refs) == 1 else {"oneOf": refs},
        },
        "bindings": {"kafka": {"bindingVersion": KAFKA_BINDING_VERSION}},
    }


def build_asyncapi() -> dict[str, Any]:
    """The whole document as a JSON-able dict (deterministic: same models, same bytes)."""
    _, schemas = models_json_schema(
        [(spec.model, "serialization") for spec in SPECS], ref_template=REF_TEMPLATE
    )
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Emporium events",
            "version": "1.0.0",
            "description": "Every topic of the platform: CloudEvents 1.0 in the Kafka binary "
            "binding, JSON data defined by versioned pydantic models in "
            "emporium.contracts.events. Delivery is at least once and ordered per key; "
            "consumers are idempotent by `ce_id`. See docs/events.md.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "production": {"url": "kafka:9092", "protocol": "kafka", "description": "Kafka"},
        },
        "channels": {topic: _channel(topic) for topic in topics()},
        "components": {
            "messages": {spec.model.__name__: _message(spec) for spec in SPECS},
            "schemas": dict(sorted(schemas.get("$defs", {}).items())),
        },
    }
