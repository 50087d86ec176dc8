"""The backends' input rules, written as JSON Schema the OpenAPI document publishes and
pydantic enforces at the edge.

Why here and not only in the backends: the published document is a promise. Whatever a
schema admits must get past the edge *and* the backend (else a client that follows the
document gets a 400 it could not foresee), and whatever it refuses must be refused. So each
type below is the backend rule it mirrors (named in its comment), spelled with `pattern`,
`maxLength` and friends, and pydantic checks the raw value against exactly that, without
stripping or case-folding first (the backend trims and normalises afterwards).
`tests/services/test_gateway_constraints.py` checks each one against the backend's own rule.

Character classes are spelled out, not `\\p{..}` escapes, because the same pattern is read
by pydantic's Rust regex engine, by Python's `re` (schemathesis, hypothesis) and by JSON
Schema validators.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, Field, StringConstraints

# Unicode 14 (Python 3.11's `unicodedata`) categories; the test recomputes them.
CONTROL_RANGES: Final = ((0x00, 0x1F), (0x7F, 0x9F))  # Cc
FORMAT_RANGES: Final = (  # Cf: soft hyphen, zero-width and bidi controls, BOM, tags...
    (0xAD, 0xAD),
    (0x600, 0x605),
    (0x61C, 0x61C),
    (0x6DD, 0x6DD),
    (0x70F, 0x70F),
    (0x890, 0x891),
    (0x8E2, 0x8E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x13438),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
)
# What Python's `str.isspace()` / `str.strip()` treat as whitespace.
SPACE_RANGES: Final = (
    (0x09, 0x0D),
    (0x1C, 0x20),
    (0x85, 0x85),
    (0xA0, 0xA0),
    (0x1680, 0x1680),
    (0x2000, 0x200A),
    (0x2028, 0x2029),
    (0x202F, 0x202F),
    (0x205F, 0x205F),
    (0x3000, 0x3000),
)
# Product text may hold line breaks and tabs (descriptions): Cc but those three.
TEXT_CONTROL_RANGES: Final = ((0x00, 0x08), (0x0B, 0x0C), (0x0E, 0x1F), (0x7F, 0x9F))


def char_class(ranges: Iterable[tuple[int, int]]) -> str:
    """The inside of a `[...]` matching the code point ranges: `\\uXXXX` escapes in the Basic
    Multilingual Plane (every engine reads those), the character itself above it."""

    def one(code: int) -> str:
        return f"\\u{code:04x}" if code < 0x10000 else chr(code)

    return "".join(one(a) if a == b else f"{one(a)}-{one(b)}" for a, b in ranges)


def text_pattern(forbidden: str, *, required: bool) -> str:
    """No forbidden character; `required`: at least one that is not whitespace either."""
    if not required:
        return f"^[^{forbidden}]*$"
    blank = forbidden + char_class(SPACE_RANGES)
    return f"^[^{forbidden}]*[^{blank}][^{forbidden}]*$"


_PRODUCT_FORBIDDEN: Final = char_class(TEXT_CONTROL_RANGES)
_USER_FORBIDDEN: Final = char_class((*CONTROL_RANGES, *FORMAT_RANGES))


def product_text(max_length: int, *, required: bool = True) -> Any:
    """product-service `_text_problem`: at most `max_length`, not blank when required, no
    control characters but tab, CR and LF."""
    return StringConstraints(
        max_length=max_length, pattern=text_pattern(_PRODUCT_FORBIDDEN, required=required)
    )


def user_text(max_length: int, *, required: bool = True) -> Any:
    """user-service `_text_problem`: at most `max_length`, not blank when required, no
    control or format characters (Cc, Cf)."""
    return StringConstraints(
        max_length=max_length, pattern=text_pattern(_USER_FORBIDDEN, required=required)
    )


def no_space(max_length: int) -> Any:
    """At least one character and none that `str.isspace()` calls whitespace."""
    return StringConstraints(
        min_length=1, max_length=max_length, pattern=f"^[^{char_class(SPACE_RANGES)}]+$"
    )


def _json_integer(value: object) -> object:
    """JSON Schema's `integer`: `5` and `5.0`, not `"5"` or `false` (pydantic's lax mode
    takes both, its strict mode refuses `5.0`)."""
    if isinstance(value, bool | str | bytes):
        raise ValueError("must be an integer")  # pydantic reports it under the field name
    return value


# Last in an `Annotated[int, Field(ge=.., le=..), JSON_INTEGER]`, after the bounds (so they
# stay `minimum`/`maximum` in the document).
JSON_INTEGER: Final = BeforeValidator(_json_integer)

# product-service and inventory-service SKU_PATTERN.
SKU_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
SKU_DESCRIPTION: Final = "1-64 letters, digits, `.`, `_` or `-`, starting with a letter or digit"
Sku = Annotated[str, StringConstraints(pattern=SKU_PATTERN), Field(description=SKU_DESCRIPTION)]
# product-service MAX_PRICE_MINOR.
MAX_PRICE_MINOR: Final = 10_000_000_000
# inventory-service MAX_ON_HAND.
MAX_COUNT: Final = 1_000_000_000
# product-service MAX_ID_LENGTH (ids are UUIDs; longer ones are refused, not looked up).
MAX_PRODUCT_ID_LENGTH: Final = 64
# Integers are bounded where JSON is exact (IEEE doubles, JavaScript's MAX_SAFE_INTEGER):
# well inside protobuf's int64, and the document's bounds keep their exact value.
MAX_SAFE_INTEGER: Final = 2**53 - 1
# Every list's cursor is URL-safe base64 (or digits): what else could it be is refused here.
CURSOR_PATTERN: Final = r"^[A-Za-z0-9_=-]*$"
MAX_CURSOR_LENGTH: Final = 512
# order-service: the key is an HTTP header value, visible ASCII.
IDEMPOTENCY_KEY_PATTERN: Final = r"^[\x21-\x7e]+$"
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 255


# auth-service `normalize_email`, in ASCII (the edge refuses internationalised domains that
# the backend would IDNA-encode: stricter, never looser): a dot-atom local part of `atext`,
# then at least two letter/digit/hyphen labels of at most 63 characters, not starting or
# ending with a hyphen, the last one starting with a letter (so never all digits). What no
# pattern without look-arounds can say (the local part's 64-character limit) is a semantic
# rule of the operation.
_ATEXT: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TOP_LABEL: Final = r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
ACCOUNT_EMAIL_PATTERN: Final = rf"^{_ATEXT}(?:\.{_ATEXT})*@(?:{_LABEL}\.)+{_TOP_LABEL}$"
MAX_EMAIL_LENGTH: Final = 254
MIN_PASSWORD_LENGTH: Final = 10
MAX_PASSWORD_LENGTH: Final = 128


def account_email() -> Any:
    """auth-service `normalize_email` (see ACCOUNT_EMAIL_PATTERN), at most 254 characters."""
    return StringConstraints(max_length=MAX_EMAIL_LENGTH, pattern=ACCOUNT_EMAIL_PATTERN)


def account_password() -> Any:
    """auth-service `check_password_policy` as far as a schema can say it: 10 to 128
    characters, no control character, not only whitespace. The rest (lengths after NFKC
    normalisation, one repeated character, the email reused) is a semantic rule."""
    return StringConstraints(
        min_length=MIN_PASSWORD_LENGTH,
        max_length=MAX_PASSWORD_LENGTH,
        pattern=text_pattern(char_class(CONTROL_RANGES), required=True),
    )
