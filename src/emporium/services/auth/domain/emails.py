"""Email addresses: one canonical form per mailbox, so `Bob@Example.COM` and `bob@example.com`
cannot become two accounts.

email-validator (pydantic's `EmailStr`) is not a project dependency, so this is a deliberately
strict subset of RFC 5321/5322 that covers real-world addresses and nothing exotic:
- local part: dot-atom of ASCII `atext` (no quoted strings, no comments, no leading, trailing
  or double dots), at most 64 characters;
- domain: at least two labels, each 1-63 letters/digits/hyphens not starting or ending with a
  hyphen, a TLD that is not all digits (so no IP literals); internationalised domains are
  accepted and stored in their ASCII (IDNA/punycode) form;
- at most 254 characters in total (RFC 5321 path limit).
It checks the shape only: whether the mailbox exists is for a confirmation email to find out.

Canonical form lowercases the whole address. RFC 5321 allows a case-sensitive local part, but
no mainstream provider uses one, and one account per spelling would be worse.
"""

from __future__ import annotations

import re
import unicodedata

from emporium.chassis.errors import FieldError, invalid

MAX_EMAIL_LENGTH = 254
MAX_LOCAL_PART_LENGTH = 64
EMAIL_FIELD = "email"

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def normalize_email(raw: str, *, field: str = EMAIL_FIELD) -> str:
    """The canonical form of `raw`, or an `invalid` DomainError naming `field`."""
    value = unicodedata.normalize("NFC", raw.strip())
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise _invalid(field, "must look like name@example.com")
    if len(local) > MAX_LOCAL_PART_LENGTH or not _LOCAL_PART.fullmatch(local):
        raise _invalid(field, "has an invalid part before the @")
    ascii_domain = _ascii_domain(domain)
    if ascii_domain is None:
        raise _invalid(field, "has an invalid domain")
    address = f"{local.lower()}@{ascii_domain}"
    if len(address) > MAX_EMAIL_LENGTH:
        raise _invalid(field, f"must be at most {MAX_EMAIL_LENGTH} characters long")
    return address


def _ascii_domain(domain: str) -> str | None:
    try:
        encoded = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    labels = encoded.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    return None if labels[-1].isdigit() else encoded


def _invalid(field: str, message: str) -> Exception:
    return invalid("invalid email address", FieldError(field, message))
