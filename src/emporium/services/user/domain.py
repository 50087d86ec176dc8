"""user-service domain: profiles, address books and who may see them. Pure: no I/O.

Field names are API.md's: a profile is `{id, email, name, roles}` and an address
`{line1, line2?, city, postal_code, country}`. Added (API.md welcomes additions): an address
`id`, an optional `phone` and `is_default`. API.md sets no limit on addresses per user; we cap
it at MAX_ADDRESSES_PER_USER so one account cannot grow without bound.

The email is validated and canonicalised by auth-service (which owns credentials and
guarantees uniqueness); user-service stores the canonical form auth returns and does not
re-validate it, so the two can never disagree.

Validation reports every bad field at once (one FieldError each, named like the JSON field),
so the gateway answers one 400/422 listing them all.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from emporium.chassis.errors import (
    DomainError,
    ErrorCode,
    FieldError,
    invalid,
    not_found,
    permission_denied,
)

ROLE_USER = "user"
ROLE_ADMIN = "admin"
"""API.md: role `admin` is required for catalog, inventory and analytics writes and reports,
and may read any user's data; every account has `user`."""

MAX_NAME_LENGTH = 100
MAX_ADDRESS_LINE_LENGTH = 200
MAX_CITY_LENGTH = 100
MAX_POSTAL_CODE_LENGTH = 16
MAX_ADDRESSES_PER_USER = 20

_POSTAL_CODE = re.compile(r"[A-Z0-9](?:[A-Z0-9 -]*[A-Z0-9])?")
_COUNTRY = re.compile(r"[A-Z]{2}")
_PHONE = re.compile(r"\+[1-9][0-9]{6,14}")  # E.164: up to 15 digits with the country code
_PHONE_SEPARATORS = re.compile(r"[\s().-]")


def _clean_text(raw: str) -> str:
    """NFC (one code point sequence per glyph) and surrounding whitespace removed."""
    return unicodedata.normalize("NFC", raw).strip()


def _text_problem(value: str, max_length: int) -> str | None:
    if not value:
        return "must not be empty"
    if len(value) > max_length:
        return f"must be at most {max_length} characters long"
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in value):
        return "must not contain control characters"
    return None


class _Problems:
    """Collects field errors so all of them are reported together."""

    def __init__(self) -> None:
        self.fields: list[FieldError] = []

    def text(self, field: str, raw: str, max_length: int) -> str:
        value = _clean_text(raw)
        problem = _text_problem(value, max_length)
        if problem:
            self.fields.append(FieldError(field, problem))
        return value

    def add(self, field: str, message: str) -> None:
        self.fields.append(FieldError(field, message))

    def raise_if_any(self, message: str) -> None:
        if self.fields:
            raise invalid(message, *self.fields)


def validate_name(raw: str, *, field: str = "name") -> str:
    """A display name: 1-100 characters after trimming, no control characters."""
    problems = _Problems()
    value = problems.text(field, raw, MAX_NAME_LENGTH)
    problems.raise_if_any("invalid name")
    return value


def normalize_roles(roles: Iterable[str]) -> tuple[str, ...]:
    """Sorted, unique, and always including `user`."""
    return tuple(sorted({ROLE_USER, *roles}))


@dataclass(frozen=True)
class Profile:
    """A user as API.md shows it at /users/me."""

    id: str
    email: str
    name: str
    roles: tuple[str, ...] = (ROLE_USER,)

    @classmethod
    def new(cls, *, id: str, email: str, name: str, roles: Iterable[str] = ()) -> Profile:
        return cls(id=id, email=email, name=validate_name(name), roles=normalize_roles(roles))

    def update(self, *, name: str | None = None) -> Profile:
        """PATCH semantics: a field left as None keeps its value; returns a new Profile."""
        if name is None:
            return self
        return replace(self, name=validate_name(name))

    @property
    def is_admin(self) -> bool:
        return ROLE_ADMIN in self.roles

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "email": self.email, "name": self.name, "roles": list(self.roles)}


@dataclass(frozen=True)
class Address:
    """A postal address of one user; values are already validated (use `Address.create`)."""

    id: str
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str | None = None
    phone: str | None = None
    is_default: bool = False

    @classmethod
    def create(
        cls,
        *,
        id: str,
        line1: str,
        city: str,
        postal_code: str,
        country: str,
        line2: str | None = None,
        phone: str | None = None,
    ) -> Address:
        """Validate and normalise every field; raise one `invalid` error naming each bad one.

        country: ISO 3166-1 alpha-2 shape (two letters, stored upper case; whether the code is
        assigned is not checked); postal_code: letters, digits, spaces, dashes (upper case);
        phone: E.164 (`+4930123456`; spaces, dots, dashes, parentheses are dropped);
        line2 and phone are optional, blank means absent.
        """
        problems = _Problems()
        line1 = problems.text("line1", line1, MAX_ADDRESS_LINE_LENGTH)
        city = problems.text("city", city, MAX_CITY_LENGTH)
        postal_code = problems.text("postal_code", postal_code, MAX_POSTAL_CODE_LENGTH).upper()
        if postal_code and not _POSTAL_CODE.fullmatch(postal_code):
            problems.add("postal_code", "may contain only letters, digits, spaces and dashes")
        country = _clean_text(country).upper()
        if not _COUNTRY.fullmatch(country):
            problems.add("country", "must be a two-letter ISO 3166-1 country code")
        clean_line2 = _clean_text(line2) if line2 is not None else ""
        if clean_line2:
            clean_line2 = problems.text("line2", clean_line2, MAX_ADDRESS_LINE_LENGTH)
        clean_phone = _PHONE_SEPARATORS.sub("", phone or "")
        if clean_phone and not _PHONE.fullmatch(clean_phone):
            problems.add("phone", "must be +<country code><number>")
        problems.raise_if_any("invalid address")
        return cls(
            id=id,
            line1=line1,
            city=city,
            postal_code=postal_code,
            country=country,
            line2=clean_line2 or None,
            phone=clean_phone or None,
        )

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "line1": self.line1,
            "line2": self.line2,
            "city": self.city,
            "postal_code": self.postal_code,
            "country": self.country,
            "phone": self.phone,
            "is_default": self.is_default,
        }


@dataclass(frozen=True)
class AddressBook:
    """A user's addresses in the order they were added, with the default-address rule:
    while the book is not empty exactly one address is the default. The first address added
    becomes it; adding with `make_default` or `set_default` moves it; removing the default
    passes it to the oldest remaining address."""

    user_id: str
    addresses: tuple[Address, ...] = ()

    @property
    def default(self) -> Address | None:
        return next((a for a in self.addresses if a.is_default), None)

    def get(self, address_id: str) -> Address:
        for address in self.addresses:
            if address.id == address_id:
                return address
        raise not_found("address not found")

    def add(self, address: Address, *, make_default: bool = False) -> AddressBook:
        if len(self.addresses) >= MAX_ADDRESSES_PER_USER:
            raise DomainError(
                f"at most {MAX_ADDRESSES_PER_USER} addresses per user",
                ErrorCode.FAILED_PRECONDITION,
                "address_limit_reached",
            )
        if any(a.id == address.id for a in self.addresses):
            raise DomainError("address id already used", ErrorCode.ALREADY_EXISTS, "duplicate_id")
        added = replace(self, addresses=(*self.addresses, replace(address, is_default=False)))
        return added.set_default(address.id) if make_default or not self.addresses else added

    def set_default(self, address_id: str) -> AddressBook:
        self.get(address_id)
        return replace(
            self,
            addresses=tuple(replace(a, is_default=a.id == address_id) for a in self.addresses),
        )

    def remove(self, address_id: str) -> AddressBook:
        removed = self.get(address_id)
        rest = replace(self, addresses=tuple(a for a in self.addresses if a.id != address_id))
        if removed.is_default and rest.addresses:
            return rest.set_default(rest.addresses[0].id)
        return rest


def can_access(caller_user_id: str, caller_roles: Iterable[str], owner_id: str) -> bool:
    """DESIGN.md's authorization rule for a user's data: its owner or an admin.
    An anonymous caller (empty id) owns nothing."""
    if ROLE_ADMIN in set(caller_roles):
        return True
    return bool(caller_user_id) and caller_user_id == owner_id


def ensure_can_access(
    caller_user_id: str, caller_roles: Iterable[str], owner_id: str, *, conceal: bool = True
) -> None:
    """Raise unless `can_access`. With `conceal` (the default) the answer is NOT_FOUND, as
    API.md does for another user's order: a stranger cannot even learn the resource exists."""
    if can_access(caller_user_id, caller_roles, owner_id):
        return
    if conceal:
        raise not_found("not found")
    raise permission_denied()
