"""Event payload contracts: registry, encode/decode, AsyncAPI freshness and backward
compatibility against the committed schema snapshots in tests/unit/schemas/.

A snapshot is the validation JSON schema of one model version. Changing a model so that it
drops or renames a field, changes a field's type or makes an optional field required fails
here: that is a new version (V2), not an edit. Adding optional fields is fine. A new model
version needs its snapshot: run with EMPORIUM_WRITE_SCHEMA_SNAPSHOTS=1 once and commit it
(existing snapshots are never overwritten).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from emporium.contracts.events import (
    SPECS,
    InventoryLowV1,
    OrderCompletedV1,
    OrderCreatedV1,
    OrderLineV1,
    PaymentStatus,
    ProductUpdatedV1,
    UnknownEventType,
    UserRegisteredV1,
    decode,
    encode,
    model_for,
    topics,
)
from emporium.contracts.events.asyncapi import build_asyncapi

SNAPSHOTS = Path(__file__).parent / "schemas"
ROOT = Path(__file__).resolve().parents[2]

Schema = dict[str, Any]


# -- the compatibility checker -----------------------------------------------------------


def _resolve(schema: Schema, defs: Schema) -> Schema:
    ref = schema.get("$ref")
    return defs.get(ref.rsplit("/", 1)[-1], {}) if ref else schema


def _shape(schema: Schema, defs: Schema) -> Any:
    """A comparable summary of a field's type (not of its docs or constraints)."""
    schema = _resolve(schema, defs)
    if "anyOf" in schema:
        return ("anyOf", sorted(str(_shape(s, defs)) for s in schema["anyOf"]))
    if "enum" in schema:
        return ("enum", schema.get("type"))
    if schema.get("type") == "array":
        return ("array", _shape(schema.get("items", {}), defs))
    if "properties" in schema:
        return "object"
    return schema.get("type")


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """What makes `new` incompatible with `old` (empty when compatible)."""
    old_defs, new_defs = old.get("$defs", {}), new.get("$defs", {})
    problems: list[str] = []

    def compare(o: Schema, n: Schema, where: str) -> None:
        o, n = _resolve(o, old_defs), _resolve(n, new_defs)
        o_props, n_props = o.get("properties", {}), n.get("properties", {})
        for name, o_field in o_props.items():
            path = f"{where}{name}"
            if name not in n_props:
                problems.append(f"{path}: removed or renamed")
                continue
            n_field = n_props[name]
            if _shape(o_field, old_defs) != _shape(n_field, new_defs):
                problems.append(f"{path}: type changed")
            o_enum = set(_resolve(o_field, old_defs).get("enum", []))
            n_enum = set(_resolve(n_field, new_defs).get("enum", []))
            if o_enum - n_enum:
                problems.append(f"{path}: enum values removed {sorted(o_enum - n_enum)}")
            o_inner, n_inner = _resolve(o_field, old_defs), _resolve(n_field, new_defs)
            if o_inner.get("type") == "array":
                o_inner = _resolve(o_inner.get("items", {}), old_defs)
                n_inner = _resolve(n_inner.get("items", {}), new_defs)
            if "properties" in o_inner and "properties" in n_inner:
                compare(o_inner, n_inner, f"{path}.")
        for name in sorted(set(n.get("required", [])) - set(o.get("required", []))):
            existed = name in o_props
            problems.append(f"{where}{name}: {'became' if existed else 'new field is'} required")

    compare(old, new, "")
    return problems


def snapshot_path(event_type: str) -> Path:
    return SNAPSHOTS / f"{event_type}.json"


# -- the checks --------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=[s.type for s in SPECS])
def test_model_is_backward_compatible_with_its_snapshot(spec: Any) -> None:
    current = spec.model.model_json_schema(mode="validation")
    path = snapshot_path(spec.type)
    if not path.exists() and os.environ.get("EMPORIUM_WRITE_SCHEMA_SNAPSHOTS") == "1":
        path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert path.exists(), f"no schema snapshot for {spec.type}: see this module's docstring"
    assert breaking_changes(json.loads(path.read_text()), current) == []


def test_every_snapshot_belongs_to_a_registered_model() -> None:
    """A snapshot may not disappear with its model: old versions stay until retired."""
    assert {p.stem for p in SNAPSHOTS.glob("*.json")} == {s.type for s in SPECS}


def _order_schema() -> Schema:
    return copy.deepcopy(json.loads(snapshot_path(OrderCreatedV1.event_type()).read_text()))


def test_checker_catches_a_dropped_or_renamed_field() -> None:
    new = _order_schema()
    new["properties"]["customer_id"] = new["properties"].pop("user_id")
    new["required"] = ["customer_id" if r == "user_id" else r for r in new["required"]]
    assert breaking_changes(_order_schema(), new) == [
        "user_id: removed or renamed",
        "customer_id: new field is required",
    ]


def test_checker_catches_optional_made_required_and_type_changes() -> None:
    old = json.loads(snapshot_path(ProductUpdatedV1.event_type()).read_text())
    new = copy.deepcopy(old)
    new["required"].append("image_url")
    new["properties"]["deleted"] = {"type": "string"}
    assert breaking_changes(old, new) == ["deleted: type changed", "image_url: became required"]


def test_checker_looks_inside_nested_models() -> None:
    new = _order_schema()
    del new["$defs"]["OrderLineV1"]["properties"]["sku"]
    assert breaking_changes(_order_schema(), new) == ["lines.sku: removed or renamed"]


def test_checker_allows_a_new_optional_field() -> None:
    new = _order_schema()
    new["properties"]["coupon"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert breaking_changes(_order_schema(), new) == []


# -- registry, encode, decode ------------------------------------------------------------


def samples() -> list[Any]:
    return [
        UserRegisteredV1(
            user_id="u-1", email="a@example.com", registered_at=datetime(2025, 1, 1, tzinfo=UTC)
        ),
        OrderCreatedV1(
            order_id="o-1",
            user_id="u-1",
            currency="USD",
            total=Decimal("5.00"),
            lines=[OrderLineV1(sku="S-1", quantity=2, unit_price=Decimal("2.50"))],
        ),
        OrderCompletedV1(
            order_id="o-1", payment_id="p-1", amount=Decimal("5.00"), status=PaymentStatus.CAPTURED
        ),
        ProductUpdatedV1(product_id="p-9", name="Mug", price=Decimal("9.99")),
        InventoryLowV1(sku="S-1", available=2, threshold=5),
    ]


def test_the_five_topics_and_their_types() -> None:
    assert topics() == [
        "inventory.low",
        "order.completed",
        "order.created",
        "product.updated",
        "user.registered",
    ]
    assert {s.type for s in SPECS} == {f"com.emporium.{t}.v1" for t in topics()}
    assert model_for("order.created", "com.emporium.order.created.v1") is OrderCreatedV1


@pytest.mark.parametrize("model", samples(), ids=lambda m: type(m).__name__)
def test_encode_then_decode_round_trips(model: Any) -> None:
    topic, event_type, subject, data = encode(model)
    assert (topic, event_type) == (model.TOPIC, model.event_type())
    assert subject == str(getattr(model, model.KEY_FIELD))
    assert json.loads(json.dumps(data)) == data  # plain JSON
    assert decode(event_type, data) == model


def test_money_travels_as_decimal_strings() -> None:
    _, _, _, data = encode(samples()[1])
    assert data["total"] == "5.00"
    assert data["lines"][0]["unit_price"] == "2.50"


def test_unknown_fields_are_ignored_so_old_consumers_read_new_payloads() -> None:
    data = {"sku": "S-1", "available": 1, "threshold": 3, "warehouse": "icn-1"}
    assert decode("com.emporium.inventory.low.v1", data) == InventoryLowV1(
        sku="S-1", available=1, threshold=3
    )


def test_unknown_types_and_invalid_payloads_are_rejected() -> None:
    with pytest.raises(UnknownEventType):
        decode("com.emporium.inventory.low.v9", {})
    with pytest.raises(UnknownEventType):
        model_for("order.created", "com.emporium.inventory.low.v1")
    with pytest.raises(ValidationError):
        decode("com.emporium.inventory.low.v1", {"sku": "S-1", "available": -1, "threshold": 1})


# -- AsyncAPI ----------------------------------------------------------------------------


def test_asyncapi_document_has_every_topic_with_schemas_and_headers() -> None:
    doc = build_asyncapi()
    assert doc["asyncapi"] == "2.6.0"
    assert sorted(doc["channels"]) == topics()
    message = doc["components"]["messages"]["OrderCreatedV1"]
    assert message["headers"]["properties"]["ce_type"]["const"] == "com.emporium.order.created.v1"
    assert message["payload"] == {"$ref": "#/components/schemas/OrderCreatedV1"}
    assert {"OrderCreatedV1", "OrderLineV1"} <= set(doc["components"]["schemas"])


def test_committed_asyncapi_document_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_asyncapi.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
