"""Catalog rules (pure): validation naming fields, exact money, partial update, soft delete."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from emporium.chassis.errors import DomainError, ErrorCode
from emporium.chassis.money import exponent
from emporium.services.product.domain import (
    MAX_PRICE_MINOR,
    Money,
    Product,
    duplicate_sku,
    slugify,
)

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


def body(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "sku": "HEAD-001",
        "name": "  Wireless Headphones ",
        "description": "Over-ear, noise cancelling",
        "category": "audio",
        "price_minor": 1999,
        "currency": "USD",
    }
    base.update(overrides)
    return base


def field_names(error: DomainError) -> set[str]:
    return {f.field for f in error.fields}


def test_create_normalises_text_and_keeps_money_exact() -> None:
    product = Product.create("p1", body(attributes={"color": "black"}), NOW)
    assert product.name == "Wireless Headphones"
    assert product.price == Money(1999, "USD")
    assert (product.price_minor, product.currency) == (1999, "USD")
    assert product.attributes == {"color": "black"}
    assert product.image_urls == ()
    assert product.created_at == product.updated_at == NOW
    assert not product.deleted
    assert product.slug == "wireless-headphones"


def test_view_has_the_api_fields() -> None:
    view = Product.create("p1", body(), NOW).to_view()
    assert set(view) == {
        "id", "sku", "name", "description", "category", "price_minor", "currency",
        "attributes", "image_urls", "created_at", "updated_at",
    }  # fmt: skip
    assert view["created_at"] == "2025-01-02T03:04:05Z"
    assert view["price_minor"] == 1999


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sku", ""),
        ("sku", "has space"),
        ("sku", "-leading-dash"),
        ("sku", "x" * 65),
        ("sku", "sku/with/slash"),
        ("name", "   "),
        ("name", "n" * 201),
        ("name", 42),
        ("name", None),
        ("category", ""),
        ("description", "bad\x00byte"),
        ("price_minor", -1),
        ("price_minor", 19.99),
        ("price_minor", "1999"),
        ("price_minor", True),
        ("price_minor", MAX_PRICE_MINOR + 1),
        ("currency", "usd"),
        ("currency", "US"),
        ("currency", "EURO"),
        ("attributes", ["not", "a", "map"]),
        ("attributes", {"nested": {"a": 1}}),
        ("attributes", {"": "empty key"}),
    ],
)
def test_invalid_fields_are_named(field: str, value: object) -> None:
    with pytest.raises(DomainError) as caught:
        Product.create("p1", body(**{field: value}), NOW)
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT
    assert caught.value.http_status == 400
    assert field_names(caught.value) == {field}


def test_every_problem_is_reported_at_once() -> None:
    fields = body(sku="", price_minor=-5)
    del fields["name"]
    with pytest.raises(DomainError) as caught:
        Product.create("p1", fields, NOW)
    assert field_names(caught.value) == {"sku", "price_minor", "name"}
    messages = {f.field: f.message for f in caught.value.fields}
    assert messages["name"] == "is required"


def test_unknown_and_read_only_fields_are_refused() -> None:
    with pytest.raises(DomainError) as caught:
        Product.create("p1", body(id="x", colour="red"), NOW)
    assert {(f.field, f.message) for f in caught.value.fields} == {
        ("id", "is read-only"),
        ("colour", "unknown field"),
    }


def test_description_is_optional_and_zero_price_is_allowed() -> None:
    fields = body(price_minor=0)
    del fields["description"]
    product = Product.create("p1", fields, NOW)
    assert product.description == ""
    assert product.price_minor == 0


def test_naive_timestamps_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone"):
        Product.create("p1", body(), datetime(2025, 1, 1))


def test_patch_changes_only_given_fields_and_bumps_updated_at() -> None:
    product = Product.create("p1", body(), NOW)
    change = product.patch({"price_minor": 2499, "name": "Headphones Pro"}, LATER)
    assert change.changed == {"price_minor", "name"}
    assert change.product.price == Money(2499, "USD")
    assert change.product.name == "Headphones Pro"
    assert change.product.sku == product.sku
    assert change.product.description == product.description
    assert change.product.created_at == NOW
    assert change.product.updated_at == LATER
    assert product.price_minor == 1999  # the original is untouched (value object)


def test_noop_patch_changes_nothing() -> None:
    product = Product.create("p1", body(), NOW)
    change = product.patch({"name": "Wireless Headphones", "currency": "USD"}, LATER)
    assert change.is_noop
    assert change.product is product
    assert change.product.updated_at == NOW


def test_patch_validates_and_refuses_id() -> None:
    product = Product.create("p1", body(), NOW)
    with pytest.raises(DomainError) as caught:
        product.patch({"id": "other", "price_minor": -1, "sku": "ok-sku"}, LATER)
    assert field_names(caught.value) == {"id", "price_minor"}


def test_patch_can_replace_attributes_and_image_urls() -> None:
    product = Product.create("p1", body(attributes={"a": 1}), NOW)
    change = product.patch({"attributes": {"b": True}, "image_urls": ["/img/1.webp"]}, LATER)
    assert change.product.attributes == {"b": True}
    assert change.product.image_urls == ("/img/1.webp",)
    assert product.patch({"attributes": None}, LATER).product.attributes == {}


def test_delete_is_soft_idempotent_and_hides_the_product() -> None:
    product = Product.create("p1", body(), NOW)
    deleted = product.delete(LATER)
    assert deleted.deleted
    assert deleted.updated_at == LATER
    assert deleted.delete(LATER + timedelta(1)) is deleted
    with pytest.raises(DomainError) as caught:
        deleted.patch({"name": "x"}, LATER)
    assert caught.value.code is ErrorCode.NOT_FOUND


def test_add_image_is_idempotent() -> None:
    product = Product.create("p1", body(), NOW)
    once = product.add_image("/images/p1/a.webp", LATER)
    assert once.image_urls == ("/images/p1/a.webp",)
    assert once.add_image("/images/p1/a.webp", LATER) is once
    with pytest.raises(DomainError):
        once.add_image("has space", LATER)


def test_duplicate_sku_is_a_409_naming_sku() -> None:
    error = duplicate_sku("HEAD-001")
    assert error.http_status == 409
    assert error.reason == "duplicate_sku"
    assert field_names(error) == {"sku"}


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("19.99", "USD", 1999),
        ("0.1", "USD", 10),
        ("1000", "JPY", 1000),
        ("1.234", "KWD", 1234),
        (Decimal("5.00"), "EUR", 500),
        (7, "EUR", 700),
    ],
)
def test_money_from_major_is_exact(text: str | Decimal | int, currency: str, minor: int) -> None:
    money = Money.from_major(text, currency)
    assert money == Money(minor, currency)
    assert money.to_major() == Decimal(text).quantize(Decimal(1).scaleb(-exponent(currency)))


@pytest.mark.parametrize(
    ("value", "currency"), [("19.999", "USD"), ("1.5", "JPY"), ("abc", "USD"), (19.99, "USD")]
)
def test_money_from_major_refuses_imprecise_input(value: object, currency: str) -> None:
    with pytest.raises(DomainError):
        Money.from_major(value, currency)  # type: ignore[arg-type]


def test_money_refuses_mixed_currency_addition() -> None:
    assert Money(100, "USD") + Money(250, "USD") == Money(350, "USD")
    assert Money(100, "USD").times(3) == Money(300, "USD")
    with pytest.raises(DomainError):
        Money(100, "USD") + Money(100, "EUR")


def test_money_round_trips_for_random_amounts() -> None:
    rng = random.Random(20250102)
    for _ in range(500):
        currency = rng.choice(["USD", "JPY", "KWD", "EUR"])
        minor = rng.randrange(0, MAX_PRICE_MINOR)
        money = Money(minor, currency)
        assert Money.from_major(str(money.to_major()), currency) == money


def test_slugify() -> None:
    assert slugify("Café Crème 2-Pack!") == "cafe-creme-2-pack"
    assert slugify("  --  ") == ""
