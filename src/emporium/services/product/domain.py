"""Catalog rules: what a valid product is and how it changes. Pure: no I/O, no clock.

Why a separate layer: the REST gateway and the gRPC boundary both validate, but the rules live
here once, so a product can never be stored in a state these functions would refuse. Every
validation failure names the offending field (`FieldError`) so the gateway can render RFC 9457
`errors` without guessing. Money is integer minor units plus an ISO 4217 code; floats never
touch a price (a decimal text such as `"19.99"` is converted exactly with `Decimal`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Final

from emporium.chassis import money
from emporium.chassis.errors import DomainError, ErrorCode, FieldError, invalid, not_found

AttributeValue = str | int | float | bool | None

SKU_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CURRENCY_PATTERN: Final = re.compile(r"^[A-Z]{3}$")
MAX_NAME_LENGTH: Final = 200
MAX_DESCRIPTION_LENGTH: Final = 10_000
MAX_CATEGORY_LENGTH: Final = 100
MAX_ATTRIBUTES: Final = 50
MAX_ATTRIBUTE_KEY_LENGTH: Final = 64
MAX_ATTRIBUTE_TEXT_LENGTH: Final = 1_000
MAX_IMAGE_URLS: Final = 20
MAX_URL_LENGTH: Final = 2_048
# Ten billion minor units (100 M USD): far above any catalog price, far below BIGINT, so an
# order total (quantity x lines x price) can never overflow a 64-bit column.
MAX_PRICE_MINOR: Final = 10_000_000_000


CREATE_FIELDS: Final = frozenset(
    {"sku", "name", "description", "category", "price_minor", "currency", "attributes"}
)
REQUIRED_FIELDS: Final = frozenset({"sku", "name", "category", "price_minor", "currency"})
PATCHABLE_FIELDS: Final = CREATE_FIELDS | {"image_urls"}
READ_ONLY_FIELDS: Final = frozenset({"id", "created_at", "updated_at"})


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in integer minor units of one currency; arithmetic refuses mixed currencies."""

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        problem = price_problem(self.amount_minor) or currency_problem(self.currency)
        if problem:
            raise invalid(f"invalid money: {problem}", FieldError("price_minor", problem))

    @classmethod
    def from_major(cls, amount: str | Decimal | int, currency: str) -> Money:
        """`Money.from_major("19.99", "USD") == Money(1999, "USD")`, exactly, or a field error.

        Floats are refused on purpose: `0.1 + 0.2` is not a price.
        """
        if isinstance(amount, bool) or not isinstance(amount, str | Decimal | int):
            raise invalid("price must be a decimal string", FieldError("price", "not a decimal"))
        try:
            value = Decimal(amount.strip() if isinstance(amount, str) else amount)
        except InvalidOperation:
            raise invalid("price is not a number", FieldError("price", "not a number")) from None
        if currency_problem(currency):
            raise invalid("invalid currency", FieldError("currency", "not an ISO 4217 code"))
        try:
            amount_minor = money.to_minor(value, currency, exact=True)
        except ValueError:
            raise invalid(
                "price has more decimals than the currency allows",
                FieldError("price", f"at most {money.exponent(currency)} decimals"),
            ) from None
        return cls(amount_minor, currency)

    def to_major(self) -> Decimal:
        """The amount in major units, exact (`Decimal("19.99")`)."""
        return money.from_minor(self.amount_minor, self.currency)

    def __add__(self, other: Money) -> Money:
        if other.currency != self.currency:
            raise invalid("cannot add different currencies", FieldError("currency", "mixed"))
        return Money(self.amount_minor + other.amount_minor, self.currency)

    def times(self, quantity: int) -> Money:
        return Money(self.amount_minor * quantity, self.currency)


def price_problem(value: object) -> str | None:
    """Why `value` is not a valid `price_minor` (None when it is)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be an integer number of minor units"
    if value < 0:
        return "must not be negative"
    if value > MAX_PRICE_MINOR:
        return f"must be at most {MAX_PRICE_MINOR}"
    return None


def currency_problem(value: object) -> str | None:
    if not isinstance(value, str) or not CURRENCY_PATTERN.fullmatch(value):
        return "must be a three-letter ISO 4217 code such as USD"
    return None


def sku_problem(value: object) -> str | None:
    """SKUs appear in URLs (`/inventory/{sku}`) and Kafka keys, hence the narrow alphabet."""
    if not isinstance(value, str) or not SKU_PATTERN.fullmatch(value):
        return "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    return None


def slugify(text: str) -> str:
    """A URL-friendly slug: `"Café Crème 2-Pack!"` -> `"cafe-creme-2-pack"`."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def _text_problem(value: object, *, max_length: int, required: bool) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if required and not value.strip():
        return "must not be blank"
    if len(value) > max_length:
        return f"must be at most {max_length} characters"
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\r\t" for ch in value):
        return "must not contain control characters"
    return None


def _attributes_problem(value: object) -> str | None:
    if not isinstance(value, Mapping):
        return "must be an object"
    if len(value) > MAX_ATTRIBUTES:
        return f"must have at most {MAX_ATTRIBUTES} entries"
    for key, item in value.items():
        if not isinstance(key, str) or not 0 < len(key) <= MAX_ATTRIBUTE_KEY_LENGTH:
            return f"keys must be 1-{MAX_ATTRIBUTE_KEY_LENGTH} character strings"
        if item is not None and not isinstance(item, str | int | float | bool):
            return f"{key!r} must be a string, number, boolean or null"
        if isinstance(item, str) and len(item) > MAX_ATTRIBUTE_TEXT_LENGTH:
            return f"{key!r} must be at most {MAX_ATTRIBUTE_TEXT_LENGTH} characters"
    return None


def _image_urls_problem(value: object) -> str | None:
    if not isinstance(value, list | tuple) or len(value) > MAX_IMAGE_URLS:
        return f"must be a list of at most {MAX_IMAGE_URLS} URLs"
    for url in value:
        if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
            return "each URL must be a non-empty string"
        if any(ch.isspace() for ch in url):
            return "URLs must not contain whitespace"
    return None


def _field_problem(name: str, value: object) -> str | None:
    if value is None and name != "attributes":
        return "must not be null"
    match name:
        case "sku":
            return sku_problem(value)
        case "name":
            return _text_problem(value, max_length=MAX_NAME_LENGTH, required=True)
        case "description":
            return _text_problem(value, max_length=MAX_DESCRIPTION_LENGTH, required=False)
        case "category":
            return _text_problem(value, max_length=MAX_CATEGORY_LENGTH, required=True)
        case "price_minor":
            return price_problem(value)
        case "currency":
            return currency_problem(value)
        case "attributes":
            return None if value is None else _attributes_problem(value)
        case "image_urls":
            return _image_urls_problem(value)
    return "unknown field"


def _validate(fields: Mapping[str, object], allowed: Iterable[str]) -> list[FieldError]:
    allowed_set = frozenset(allowed)
    errors: list[FieldError] = []
    for name, value in fields.items():
        if name in READ_ONLY_FIELDS:
            errors.append(FieldError(name, "is read-only"))
        elif name not in allowed_set:
            errors.append(FieldError(name, "unknown field"))
        elif problem := _field_problem(name, value):
            errors.append(FieldError(name, problem))
    return errors


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (UTC)")


def _clean_text(value: object) -> str:
    assert isinstance(value, str)
    return value.strip()


def _attributes(value: object) -> dict[str, AttributeValue]:
    if value is None:
        return {}
    assert isinstance(value, Mapping)
    return {str(key): item for key, item in value.items()}


@dataclass(frozen=True)
class Product:
    """A catalog entry. Stock is deliberately absent: inventory-service owns it (by `sku`).

    Deleting is a flag, not a row removal, so orders and the `product.updated` consumers can
    still resolve a deleted product's id; public reads treat a deleted product as 404.
    """

    id: str
    sku: str
    name: str
    description: str
    category: str
    price: Money
    attributes: Mapping[str, AttributeValue]
    image_urls: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    deleted: bool = False

    @property
    def price_minor(self) -> int:
        return self.price.amount_minor

    @property
    def currency(self) -> str:
        return self.price.currency

    @property
    def slug(self) -> str:
        """Human-readable URL fragment; not unique (ids are), so never used for lookups."""
        return slugify(self.name) or slugify(self.sku) or self.id

    @classmethod
    def create(cls, product_id: str, fields: Mapping[str, object], now: datetime) -> Product:
        """Validate a `POST /products` body; every bad field is reported, not only the first."""
        _require_aware(now)
        errors = _validate(fields, CREATE_FIELDS)
        missing = sorted(REQUIRED_FIELDS - set(fields))
        errors += [FieldError(name, "is required") for name in missing]
        if errors:
            raise invalid("invalid product", *errors)
        return cls(
            id=product_id,
            sku=str(fields["sku"]),
            name=_clean_text(fields["name"]),
            description=_clean_text(fields.get("description", "")),
            category=_clean_text(fields["category"]),
            price=Money(int(str(fields["price_minor"])), str(fields["currency"])),
            attributes=_attributes(fields.get("attributes")),
            image_urls=(),
            created_at=now,
            updated_at=now,
        )

    def patch(self, changes: Mapping[str, object], now: datetime) -> ProductChange:
        """Apply a partial update (`PATCH`): absent fields keep their value.

        Returns what actually changed, so a no-op patch neither bumps `updated_at` nor emits
        `product.updated`.
        """
        _require_aware(now)
        self._require_live()
        errors = _validate(changes, PATCHABLE_FIELDS)
        if errors:
            raise invalid("invalid product update", *errors)
        updated = self._with(changes)
        changed = frozenset(
            name for name in changes if getattr(updated, name) != getattr(self, name)
        )
        if not changed:
            return ProductChange(self, changed)
        return ProductChange(replace(updated, updated_at=now), changed)

    def _with(self, changes: Mapping[str, object]) -> Product:
        """This product with validated `changes` applied (text trimmed, money rebuilt)."""

        def text(name: str, current: str) -> str:
            return _clean_text(changes[name]) if name in changes else current

        images = changes.get("image_urls", self.image_urls)
        assert isinstance(images, list | tuple)
        return replace(
            self,
            sku=str(changes.get("sku", self.sku)),
            name=text("name", self.name),
            description=text("description", self.description),
            category=text("category", self.category),
            price=Money(
                int(str(changes.get("price_minor", self.price_minor))),
                str(changes.get("currency", self.currency)),
            ),
            attributes=_attributes(changes["attributes"])
            if "attributes" in changes
            else self.attributes,
            image_urls=tuple(str(url) for url in images),
        )

    def add_image(self, url: str, now: datetime) -> Product:
        """Record an uploaded image (idempotent: the same url is not listed twice)."""
        self._require_live()
        if problem := _image_urls_problem([url]):
            raise invalid("invalid image url", FieldError("url", problem))
        if url in self.image_urls:
            return self
        if len(self.image_urls) >= MAX_IMAGE_URLS:
            raise invalid("too many images", FieldError("file", f"at most {MAX_IMAGE_URLS}"))
        return replace(self, image_urls=(*self.image_urls, url), updated_at=now)

    def delete(self, now: datetime) -> Product:
        """Soft-delete; deleting twice is a no-op (DELETE is idempotent)."""
        if self.deleted:
            return self
        return replace(self, deleted=True, updated_at=now)

    def _require_live(self) -> None:
        if self.deleted:
            raise not_found(f"product {self.id} not found")

    def to_view(self) -> dict[str, object]:
        """The API.md product shape (timestamps RFC 3339)."""
        return {
            "id": self.id,
            "sku": self.sku,
            "name": self.name,
            "description": self.description,
            "category": self.category,
            "price_minor": self.price_minor,
            "currency": self.currency,
            "attributes": dict(self.attributes),
            "image_urls": list(self.image_urls),
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "updated_at": self.updated_at.isoformat().replace("+00:00", "Z"),
        }


@dataclass(frozen=True)
class ProductChange:
    """The result of a patch: the new product and the names of the fields that changed."""

    product: Product
    changed: frozenset[str]

    @property
    def is_noop(self) -> bool:
        return not self.changed


def duplicate_sku(sku: str) -> DomainError:
    """The 409 for `POST /products` with a taken sku (the store detects it, this names it)."""
    return DomainError(
        f"a product with sku {sku!r} already exists",
        code=ErrorCode.ALREADY_EXISTS,
        reason="duplicate_sku",
        fields=[FieldError("sku", "already exists")],
    )
