"""The gateway's published input rules against the rules they mirror.

Two promises per constrained field, checked on generated strings (hypothesis, fixed seed):
- what pydantic accepts at the edge is exactly what the published JSON Schema admits (as
  judged by jsonschema-rs, the validator schemathesis uses), so the document neither
  promises more nor less than the edge enforces;
- whatever the edge accepts, the backend rule accepts too (the gateway may be stricter), so
  a request that follows the document is never refused later by a rule it could not see.
The character classes are recomputed from `unicodedata` as well.

Found by the schemathesis run (tests/e2e/test_schemathesis.py): names of 101-200 characters,
control characters, `price_minor` above 10^10, search `q` above 200 characters and address
retries keys above 64 passed the edge and were refused by a backend.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Callable
from typing import Annotated, Any

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, StringConstraints, TypeAdapter, ValidationError

from emporium.chassis.errors import DomainError
from emporium.services.api_gateway import auth as gateway_auth
from emporium.services.api_gateway import constraints, products, schemas, users
from emporium.services.api_gateway import orders as gateway_orders
from emporium.services.auth.domain import emails as auth_emails
from emporium.services.auth.domain import passwords as auth_passwords
from emporium.services.inventory import domain as inventory_domain
from emporium.services.order import domain as order_domain
from emporium.services.order import rpc as order_rpc
from emporium.services.product import domain as product_domain
from emporium.services.user import domain as user_domain

# Characters the rules are about, mixed into generated text.
TRICKY = [
    *"\x00\x08\t\n\x0b\x0c\r\x1c\x1f \x7f\x85\x9f\xa0\xad",
    *"\u180e\u2000\u200b\u200d\u2028\u202e\u2060\u3000\ufeff",
    "\U000110bd",
    "\U000e0001",
    *"aZ09._-@ é",
]
TEXT = st.text(alphabet=st.sampled_from(TRICKY) | st.characters(codec="utf-8"), max_size=12)
EXAMPLES = settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def ranges(predicate: Callable[[str], bool]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF or not predicate(chr(code)):
            continue
        if out and out[-1][1] == code - 1:
            out[-1] = (out[-1][0], code)
        else:
            out.append((code, code))
    return out


def test_character_classes_are_this_pythons_unicode_categories() -> None:
    assert list(constraints.CONTROL_RANGES) == ranges(lambda c: unicodedata.category(c) == "Cc")
    assert list(constraints.FORMAT_RANGES) == ranges(lambda c: unicodedata.category(c) == "Cf")
    assert list(constraints.SPACE_RANGES) == ranges(str.isspace)


class Rule:
    """One gateway type: its pydantic validator and its published JSON Schema."""

    def __init__(self, annotation: Any) -> None:
        self.adapter: TypeAdapter[Any] = TypeAdapter(annotation)
        self.schema = jsonschema_rs.validator_for(self.adapter.json_schema(), validate_formats=True)

    def edge_accepts(self, value: object) -> bool:
        try:
            self.adapter.validate_python(value)
        except ValidationError:
            return False
        return True

    def document_admits(self, value: object) -> bool:
        return bool(self.schema.is_valid(value))


def refuses(check: Callable[[], object]) -> bool:
    try:
        check()
    except DomainError:
        return True
    return False


def agree(rule: Rule, value: object, backend_accepts: Callable[[object], bool]) -> None:
    assert rule.edge_accepts(value) == rule.document_admits(value), repr(value)
    if rule.edge_accepts(value):
        assert backend_accepts(value), repr(value)


def padded(strategy: st.SearchStrategy[str], near: int) -> st.SearchStrategy[str]:
    """Text around a length limit: `near - 2` to `near + 2` characters."""
    return st.tuples(strategy, st.integers(near - 2, near + 2)).map(
        lambda pair: (pair[0] * near)[: pair[1]] if pair[0] else "x" * pair[1]
    )


def product_field(name: str) -> Callable[[object], bool]:
    return lambda value: product_domain._field_problem(name, value) is None


PRODUCT_RULES = [
    ("name", products.Name, 200, product_field("name")),
    ("description", products.Description, 5000, product_field("description")),
    ("category", products.Category, 100, product_field("category")),
    ("sku", constraints.Sku, 64, product_field("sku")),
]


def test_product_sku_is_inventorys_too() -> None:
    rule = Rule(constraints.Sku)

    @EXAMPLES
    @given(st.one_of(TEXT, st.from_regex(constraints.SKU_PATTERN, fullmatch=True)))
    def check(value: str) -> None:
        agree(rule, value, lambda v: inventory_domain.sku_problem(v) is None)

    check()


def test_image_urls_and_prices() -> None:
    urls = Rule(products.ImageLink)
    price = Rule(products.PriceMinor)

    @EXAMPLES
    @given(TEXT, st.integers(-2, constraints.MAX_PRICE_MINOR * 2))
    def check(url: str, amount: int) -> None:
        agree(urls, url, lambda v: product_domain._field_problem("image_urls", [v]) is None)
        agree(price, amount, product_field("price_minor"))

    check()
    assert not price.edge_accepts(True)
    assert not price.edge_accepts("5")
    assert price.edge_accepts(5.0)


def test_attributes() -> None:
    rule = Rule(products.Attributes)
    keys = st.one_of(TEXT, padded(TEXT, 64))
    values = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), padded(TEXT, 1000)
    )

    @EXAMPLES
    @given(st.dictionaries(keys, values, max_size=3))
    def check(value: dict[str, Any]) -> None:
        agree(rule, value, product_field("attributes"))

    check()
    assert not rule.edge_accepts({f"k{i}": 1 for i in range(51)})


def user_text(check: Callable[[str], object]) -> Callable[[object], bool]:
    return lambda value: not refuses(lambda: check(str(value)))


def address(**fields: str) -> Callable[[], object]:
    base = {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}
    return lambda: user_domain.Address.create(id="a1", **{**base, **fields})


USER_RULES: list[tuple[str, Any, int, Callable[[str], object]]] = [
    ("name", users.ProfileName, 100, user_domain.validate_name),
    ("line1", schemas.AddressLine, 200, lambda v: address(line1=v)()),
    ("line2", schemas.OptionalAddressLine, 200, lambda v: address(line2=v)()),
    ("city", schemas.City, 100, lambda v: address(city=v)()),
    ("postal_code", schemas.PostalCode, 16, lambda v: address(postal_code=v)()),
    ("country", schemas.CountryCode, 2, lambda v: address(country=v)()),
]


TEXT_RULES = [
    *(("product " + name, *rest) for name, *rest in PRODUCT_RULES),
    *(("user " + name, ann, limit, user_text(check)) for name, ann, limit, check in USER_RULES),
]


@pytest.mark.parametrize(
    ("name", "annotation", "limit", "backend_accepts"), TEXT_RULES, ids=[r[0] for r in TEXT_RULES]
)
def test_text_rules(
    name: str, annotation: Any, limit: int, backend_accepts: Callable[[object], bool]
) -> None:
    rule = Rule(annotation)

    @EXAMPLES
    @given(st.one_of(TEXT, padded(TEXT, limit)))
    def check(value: str) -> None:
        agree(rule, value, backend_accepts)

    check()


def field_rule(model: type[BaseModel], name: str) -> Rule:
    field = model.model_fields[name]
    return Rule(Annotated[field.annotation, *field.metadata])


SHIPPING = {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}
LINE = {"product_id": "p-1", "quantity": 1}


def order_refused(body: dict[str, Any], key: str = "k-1") -> bool:
    """Through the same path as a request: the gateway's body model and PlaceOrder message,
    order-service's translation of it, then its validation."""
    try:
        parsed = gateway_orders.PlaceOrderBody.model_validate(body)
    except ValidationError:
        return False  # refused at the edge: nothing to compare
    request = gateway_orders.place_order_request(parsed, key, "u-1")
    command = order_rpc._body(request)
    return refuses(lambda: order_domain.PlaceOrder.parse("u-1", key, command))


def order(**fields: Any) -> dict[str, Any]:
    return {"items": [LINE], "payment_token": "tok_visa", "shipping_address": SHIPPING, **fields}


def test_an_address_the_edge_accepts_is_also_a_valid_shipping_address() -> None:
    @EXAMPLES
    @given(st.sampled_from(["line1", "line2", "city", "postal_code", "country"]), TEXT)
    def check(name: str, value: str) -> None:
        body = order(shipping_address={**SHIPPING, name: value})
        assert not order_refused(body), body

    check()


def test_order_lines_tokens_and_keys() -> None:
    line = Rule(gateway_orders.OrderLineBody)
    token = field_rule(gateway_orders.PlaceOrderBody, "payment_token")
    key = Rule(
        Annotated[
            str,
            StringConstraints(
                min_length=1,
                max_length=constraints.MAX_IDEMPOTENCY_KEY_LENGTH,
                pattern=constraints.IDEMPOTENCY_KEY_PATTERN,
            ),
        ]
    )

    @EXAMPLES
    @given(TEXT, st.integers(-1, 202), TEXT)
    def check(text: str, quantity: int, header: str) -> None:
        body = {"product_id": text, "quantity": quantity}
        assert line.edge_accepts(body) == line.document_admits(body), body
        assert not order_refused(order(items=[body])), body
        assert token.edge_accepts(text) == token.document_admits(text), text
        assert not order_refused(order(payment_token=text)), text
        agree(key, header, lambda v: order_domain.idempotency_key_problem(v) is None)

    check()


def test_cursor_pattern_admits_every_cursor_a_backend_issues() -> None:
    """Product, notification and search cursors are URL-safe base64 without padding, the
    order cursor with it, the address cursor digits."""
    pattern = re.compile(constraints.CURSOR_PATTERN)
    raw = b"2024-05-01T12:00:00.123456+00:00|0f8c3b1e-6c1a-4a8e-9a5e-6f2b1b0d9c7e"
    issued = [
        base64.urlsafe_b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "40",
    ]
    for cursor in issued:
        assert pattern.fullmatch(cursor)
        assert len(cursor) <= constraints.MAX_CURSOR_LENGTH
    for refused in ("a b", "a/b", "a+b", "\u00e9"):
        assert not pattern.fullmatch(refused)


EMAIL_PARTS = st.sampled_from([*"aZ09.-_+@", "é", "xn--p1ai", "..", "-", " ", "\x00", "0"])
EMAILS = st.one_of(
    TEXT,
    st.lists(EMAIL_PARTS, max_size=12).map("".join),
    st.from_regex(constraints.ACCOUNT_EMAIL_PATTERN, fullmatch=True),
)


def auth_accepts_email(value: object) -> bool:
    return not refuses(lambda: auth_emails.normalize_email(str(value)))


def test_register_email_the_edge_admits_is_an_email_auth_accepts() -> None:
    """Up to the declared semantic rule (local part over 64 characters): `0@0` and `a@b`
    are refused at the edge, as auth-service refuses them."""
    rule = Rule(gateway_auth.Email)

    @EXAMPLES
    @given(EMAILS)
    def check(value: str) -> None:
        assert rule.edge_accepts(value) == rule.document_admits(value), repr(value)
        if rule.edge_accepts(value) and len(value.partition("@")[0]) <= 64:
            assert auth_accepts_email(value), repr(value)

    check()
    for refused in ("0@0", "a@b", "a@b.1", "a..b@c.de", "a@-b.de", " a@b.de"):
        assert not rule.edge_accepts(refused), refused
    assert rule.edge_accepts("first.last+tag@mail.example.co.uk")


PASSWORDS = st.one_of(TEXT, padded(TEXT, 10), padded(TEXT, 128))


def test_register_password_the_edge_admits_is_refused_only_by_declared_rules() -> None:
    """What the schema admits passes auth-service's policy unless it breaks a rule the
    operation declares semantic (NFKC length, one repeated character, the email)."""
    rule = Rule(gateway_auth.Password)

    @EXAMPLES
    @given(PASSWORDS)
    def check(value: str) -> None:
        assert rule.edge_accepts(value) == rule.document_admits(value), repr(value)
        normalized = auth_passwords.normalize_password(value)
        declared = len(set(normalized)) == 1 or not 10 <= len(normalized) <= 128
        if rule.edge_accepts(value) and not declared:
            assert not refuses(lambda: auth_passwords.check_password_policy(value)), repr(value)

    check()
    for refused in ("short", "\x00" * 12, " " * 12, "abc\x7fdefghij"):
        assert not rule.edge_accepts(refused), refused
    assert set(gateway_auth.REGISTRATION_RULES) == {"email", "password"}


def test_register_name_the_edge_admits_is_a_profile_name_user_service_accepts() -> None:
    """Else auth-service creates the account and user-service then refuses its profile."""
    rule = Rule(gateway_auth.Name)

    @EXAMPLES
    @given(st.one_of(TEXT, padded(TEXT, 100), padded(TEXT, 200)))
    def check(value: str) -> None:
        agree(rule, value, user_text(user_domain.validate_name))

    check()
    assert not rule.edge_accepts("x" * 101)
