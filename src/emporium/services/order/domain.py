"""Order rules: what a valid `PlaceOrder` is, how an order is priced, and its statuses.

Pure (no I/O, no clock). Prices come only from product-service: the handler fetches a
`CatalogEntry` per product id and `price_order` builds the lines; the client's body carries
ids and quantities, never prices. The checkout saga that drives an order from PENDING to PAID
or CANCELLED lives in `saga.py`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from emporium.chassis.errors import (
    DomainError,
    ErrorCode,
    FieldError,
    conflict,
    invalid,
    not_found,
)
from emporium.chassis.money import from_minor

MAX_LINES: Final = 50
MAX_QUANTITY: Final = 100
MAX_TOKEN_LENGTH: Final = 255
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 255
IDEMPOTENCY_KEY_FIELD: Final = "Idempotency-Key"
TOPIC_ORDER_CREATED: Final = "order.created"
_KEY_PATTERN: Final = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII, as in an HTTP header
_COUNTRY_PATTERN: Final = re.compile(r"^[A-Z]{2}$")
_ADDRESS_LIMITS: Final = {"line1": 200, "line2": 200, "city": 100, "postal_code": 20}


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    PAID = "PAID"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class ShippingAddress:
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str | None = None

    def as_dict(self) -> dict[str, str]:
        out = {
            "line1": self.line1,
            "city": self.city,
            "postal_code": self.postal_code,
            "country": self.country,
        }
        if self.line2:
            out["line2"] = self.line2
        return out


@dataclass(frozen=True)
class RequestedItem:
    product_id: str
    quantity: int


def _parse_items(raw: object, errors: list[FieldError]) -> tuple[RequestedItem, ...]:
    """Validate `items`; repeated product ids are merged (quantities added) rather than
    refused, because a cart that lists a product twice means "this many in total"."""
    if not isinstance(raw, list) or not raw:
        errors.append(FieldError("items", "must be a non-empty list"))
        return ()
    merged: dict[str, int] = {}
    for index, item in enumerate(raw):
        where = f"items.{index}"
        if not isinstance(item, Mapping):
            errors.append(FieldError(where, "must be an object"))
            continue
        product_id, quantity = item.get("product_id"), item.get("quantity")
        if not isinstance(product_id, str) or not product_id.strip():
            errors.append(FieldError(f"{where}.product_id", "must be a non-empty string"))
        elif isinstance(quantity, bool) or not isinstance(quantity, int):
            errors.append(FieldError(f"{where}.quantity", "must be an integer"))
        elif not 1 <= quantity <= MAX_QUANTITY:
            errors.append(FieldError(f"{where}.quantity", f"must be between 1 and {MAX_QUANTITY}"))
        elif merged.get(product_id, 0) + quantity > MAX_QUANTITY:
            errors.append(
                FieldError(f"{where}.quantity", f"at most {MAX_QUANTITY} of one product in total")
            )
        else:
            merged[product_id] = merged.get(product_id, 0) + quantity
    if len(merged) > MAX_LINES:
        errors.append(FieldError("items", f"at most {MAX_LINES} different products"))
    return tuple(RequestedItem(pid, qty) for pid, qty in merged.items())


def _parse_address(raw: object, errors: list[FieldError]) -> ShippingAddress | None:
    if not isinstance(raw, Mapping):
        errors.append(FieldError("shipping_address", "must be an object"))
        return None
    values: dict[str, str] = {}
    for name, limit in _ADDRESS_LIMITS.items():
        value = raw.get(name)
        if value is None and name == "line2":
            continue
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            errors.append(FieldError(f"shipping_address.{name}", f"must be 1-{limit} characters"))
        else:
            values[name] = value.strip()
    country = raw.get("country")
    if not isinstance(country, str) or not _COUNTRY_PATTERN.fullmatch(country.upper()):
        errors.append(FieldError("shipping_address.country", "must be an ISO 3166-1 alpha-2 code"))
    elif {"line1", "city", "postal_code"} <= values.keys():
        return ShippingAddress(country=country.upper(), **values)
    return None


def _token_problem(token: object) -> str | None:
    """Shape only: the payment service is the authority on which tokens exist (and answers 400
    for unknown ones); refusing obvious garbage here keeps it from reserving stock."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return f"must be a non-empty string of at most {MAX_TOKEN_LENGTH} characters"
    if any(ch.isspace() for ch in token):
        return "must not contain whitespace"
    return None


def idempotency_key_problem(key: object) -> str | None:
    if not isinstance(key, str) or not key:
        return "header is required"
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or not _KEY_PATTERN.fullmatch(key):
        return f"must be 1-{MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters"
    return None


@dataclass(frozen=True)
class PlaceOrder:
    """Command: a signed-in user checks out a cart (POST /api/v1/orders)."""

    user_id: str
    idempotency_key: str
    items: tuple[RequestedItem, ...]
    payment_token: str
    shipping_address: ShippingAddress

    @classmethod
    def parse(cls, user_id: str, idempotency_key: object, body: Mapping[str, object]) -> PlaceOrder:
        """Validate the whole request, reporting every bad field at once (as a 400)."""
        errors: list[FieldError] = []
        if problem := idempotency_key_problem(idempotency_key):
            errors.append(FieldError(IDEMPOTENCY_KEY_FIELD, problem))
        items = _parse_items(body.get("items"), errors)
        if problem := _token_problem(body.get("payment_token")):
            errors.append(FieldError("payment_token", problem))
        address = _parse_address(body.get("shipping_address"), errors)
        if errors or address is None:
            raise invalid("invalid order", *errors)
        return cls(
            user_id=user_id,
            idempotency_key=str(idempotency_key),
            items=items,
            payment_token=str(body["payment_token"]),
            shipping_address=address,
        )

    def fingerprint(self) -> str:
        """A stable hash of what the request asks for (not of its JSON spelling), so a retry
        with the same meaning replays and anything else under the same key is refused."""
        canonical = {
            "user_id": self.user_id,
            "items": sorted((i.product_id, i.quantity) for i in self.items),
            "payment_token": self.payment_token,
            "shipping_address": self.shipping_address.as_dict(),
        }
        encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(encoded).hexdigest()


@dataclass(frozen=True)
class IdempotencyRecord:
    """Stored with the order (unique on `(user_id, key)`): which order a key produced."""

    user_id: str
    key: str
    fingerprint: str
    order_id: str


def replay_of(record: IdempotencyRecord | None, command: PlaceOrder) -> str | None:
    """The order id to replay for this request, or None when it is a new one.

    Same key and same request: the first order (and its answer, even a 409) is replayed and no
    second order is created. Same key, different request: 409 `idempotency_key_reused`
    (API.md names no code; the IETF Idempotency-Key draft suggests 422, which the chassis
    error codes do not have, so it is a conflict).
    """
    if record is None:
        return None
    if record.fingerprint != command.fingerprint():
        raise conflict(
            "this Idempotency-Key was already used for a different request",
            "idempotency_key_reused",
        )
    return record.order_id


@dataclass(frozen=True)
class CatalogEntry:
    """What product-service says about one product at checkout time."""

    product_id: str
    sku: str
    name: str
    price_minor: int
    currency: str
    deleted: bool = False


@dataclass(frozen=True)
class OrderLine:
    product_id: str
    sku: str
    name: str
    quantity: int
    unit_price_minor: int

    @property
    def subtotal_minor(self) -> int:
        return self.quantity * self.unit_price_minor


@dataclass(frozen=True)
class PricedOrder:
    lines: tuple[OrderLine, ...]
    total_minor: int
    currency: str


def price_order(command: PlaceOrder, catalog: Mapping[str, CatalogEntry]) -> PricedOrder:
    """Lines with product-service's prices; unknown/deleted products and mixed currencies are
    400s naming the item, because one order is charged in one currency."""
    errors: list[FieldError] = []
    lines: list[OrderLine] = []
    for index, item in enumerate(command.items):
        entry = catalog.get(item.product_id)
        if entry is None or entry.deleted:
            errors.append(FieldError(f"items.{index}.product_id", "unknown product"))
            continue
        lines.append(
            OrderLine(entry.product_id, entry.sku, entry.name, item.quantity, entry.price_minor)
        )
    currencies = {catalog[line.product_id].currency for line in lines}
    if len(currencies) > 1:
        errors.append(FieldError("items", f"products are priced in {sorted(currencies)}"))
    total = sum(line.subtotal_minor for line in lines)
    if not errors and total <= 0:
        errors.append(FieldError("items", "the order total must be positive"))
    if errors:
        raise invalid("the order cannot be priced", *errors)
    return PricedOrder(tuple(lines), total, currencies.pop())


_ORDER_TRANSITIONS: Final = {
    OrderStatus.PENDING: frozenset({OrderStatus.PAID, OrderStatus.CANCELLED}),
    OrderStatus.PAID: frozenset({OrderStatus.CANCELLED}),
    OrderStatus.CANCELLED: frozenset[OrderStatus](),
}


@dataclass
class Order:
    """The order aggregate; its status is driven by the checkout saga only."""

    id: str
    user_id: str
    lines: tuple[OrderLine, ...]
    total_minor: int
    currency: str
    shipping_address: ShippingAddress
    idempotency_key: str
    fingerprint: str
    created_at: datetime
    updated_at: datetime
    status: OrderStatus = OrderStatus.PENDING
    payment_status: str = "PENDING"
    payment_reason: str | None = None
    cancel_reason: str | None = None

    @classmethod
    def place(cls, order_id: str, command: PlaceOrder, priced: PricedOrder, now: datetime) -> Order:
        return cls(
            id=order_id,
            user_id=command.user_id,
            lines=priced.lines,
            total_minor=priced.total_minor,
            currency=priced.currency,
            shipping_address=command.shipping_address,
            idempotency_key=command.idempotency_key,
            fingerprint=command.fingerprint(),
            created_at=now,
            updated_at=now,
        )

    def _move(self, to: OrderStatus, now: datetime) -> None:
        if to is self.status:
            return
        if to not in _ORDER_TRANSITIONS[self.status]:
            raise DomainError(
                f"order {self.id} cannot go from {self.status} to {to}",
                ErrorCode.FAILED_PRECONDITION,
                "illegal_order_transition",
            )
        self.status = to
        self.updated_at = now

    def mark_paid(self, now: datetime) -> None:
        self.payment_status, self.payment_reason = "CAPTURED", None
        self._move(OrderStatus.PAID, now)

    def mark_cancelled(self, reason: str, now: datetime) -> None:
        self.cancel_reason = self.cancel_reason or reason
        self._move(OrderStatus.CANCELLED, now)

    def set_payment(self, status: str, reason: str | None, now: datetime) -> None:
        self.payment_status, self.payment_reason = status, reason
        self.updated_at = now

    def ensure_visible_to(self, user_id: str, *, is_admin: bool) -> None:
        """Another user's order is a 404 (API.md), so ids cannot be probed."""
        if not is_admin and self.user_id != user_id:
            raise not_found(f"order {self.id} not found")

    def created_event_payload(self) -> dict[str, object]:
        """`order.created` data (key: order id), shaped as `OrderCreatedV1`: amounts are exact
        decimals in major units, as every event carries money."""
        return {
            "order_id": self.id,
            "user_id": self.user_id,
            "lines": [
                {
                    "sku": line.sku,
                    "product_id": line.product_id,
                    "quantity": line.quantity,
                    "unit_price": from_minor(line.unit_price_minor, self.currency),
                }
                for line in self.lines
            ],
            "total": from_minor(self.total_minor, self.currency),
            "currency": self.currency,
        }

    def to_view(self) -> dict[str, object]:
        payment: dict[str, object] = {"status": self.payment_status}
        if self.payment_reason:
            payment["reason"] = self.payment_reason
        return {
            "id": self.id,
            "user_id": self.user_id,
            "status": self.status.value,
            "items": [_line_view(line) for line in self.lines],
            "total_minor": self.total_minor,
            "currency": self.currency,
            "payment": payment,
            "created_at": _rfc3339(self.created_at),
            "updated_at": _rfc3339(self.updated_at),
        }


def _line_view(line: OrderLine) -> dict[str, object]:
    return {
        "product_id": line.product_id,
        "sku": line.sku,
        "name": line.name,
        "quantity": line.quantity,
        "unit_price_minor": line.unit_price_minor,
    }


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def sku_quantities(lines: Sequence[OrderLine]) -> tuple[tuple[str, int], ...]:
    """What to reserve: quantity per sku (two products never share a sku, but be safe)."""
    totals: dict[str, int] = {}
    for line in lines:
        totals[line.sku] = totals.get(line.sku, 0) + line.quantity
    return tuple(sorted(totals.items()))
