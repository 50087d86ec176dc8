"""Password policy and argon2id hashing.

Why argon2id: it is the password hash recommended by RFC 9106 and OWASP; being memory-hard it
makes GPU/ASIC guessing of a stolen credentials table expensive, and the `id` variant resists
both side-channel and trade-off attacks. argon2-cffi wraps the reference implementation.

Why the policy is short: NIST SP 800-63B asks for a minimum length, a generous maximum, every
printable character allowed (spaces and emoji included), Unicode normalised (NFKC) before
hashing, and no composition rules ("one digit, one symbol") because those push users to
predictable passwords. API.md fixes the minimum: fewer than 10 characters is weak.
"""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from emporium.chassis.errors import DomainError, ErrorCode, FieldError, invalid

MIN_PASSWORD_LENGTH = 10
"""API.md: a password under 10 characters is weak (400/422)."""

MAX_PASSWORD_LENGTH = 128
"""Upper bound (in characters, after NFKC) so a megabyte "password" cannot be used to burn
CPU and memory; NIST asks for at least 64."""

PASSWORD_FIELD = "password"


@dataclass(frozen=True)
class Argon2Parameters:
    """The cost of one hash. Stored inside every hash string (`$argon2id$v=19$m=..,t=..,p=..`),
    so raising them later is safe: old hashes still verify and `needs_rehash` says when to
    upgrade one (at the next successful login)."""

    time_cost: int
    memory_cost_kib: int
    parallelism: int
    hash_len: int = 32
    salt_len: int = 16


PASSWORD_HASH_PARAMETERS = Argon2Parameters(time_cost=3, memory_cost_kib=64 * 1024, parallelism=4)
"""RFC 9106 section 4, second recommended option ("if much less memory is available"):
t=3 passes over 64 MiB with 4 lanes, 16-byte salt, 32-byte tag. That is argon2-cffi's own
default profile, written out here so a library upgrade never changes it silently. It costs
roughly 50-100 ms and 64 MiB per login on one core of a current server: slow for a guesser,
acceptable for a login endpoint that the gateway also rate-limits."""


def normalize_password(password: str) -> str:
    """NFKC form (NIST SP 800-63B 5.1.1.2), so the same passphrase typed on two keyboards
    that emit different code points for one glyph still matches."""
    return unicodedata.normalize("NFKC", password)


def check_password_policy(password: str, *, email: str | None = None) -> None:
    """Raise an `invalid` DomainError naming `password` if it is unacceptable.

    Every broken rule is reported (one FieldError each) so a client can show them all at once.
    `email`, when given, must not be reused as the password.
    """
    value = normalize_password(password)
    problems: list[str] = []
    if len(value) < MIN_PASSWORD_LENGTH:
        problems.append(f"must be at least {MIN_PASSWORD_LENGTH} characters long")
    if len(value) > MAX_PASSWORD_LENGTH:
        problems.append(f"must be at most {MAX_PASSWORD_LENGTH} characters long")
    if value and not value.strip():
        problems.append("must not be only spaces")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        problems.append("must not contain control characters")
    if len(value) >= MIN_PASSWORD_LENGTH and len(set(value)) == 1:
        problems.append("must not be a single repeated character")
    if email and value.casefold() in _email_variants(email):
        problems.append("must not be your email address")
    if problems:
        raise invalid("password is too weak", *(FieldError(PASSWORD_FIELD, p) for p in problems))


def _email_variants(email: str) -> set[str]:
    folded = email.strip().casefold()
    return {folded, folded.rpartition("@")[0]}


class PasswordHashing:
    """argon2id hash/verify with fixed parameters (see PASSWORD_HASH_PARAMETERS).

    `verify_nothing` exists for login: when the email is unknown, spending the same time on a
    dummy verification keeps the answer's timing from telling which emails have accounts
    (API.md: same answer for unknown email and wrong password).
    """

    def __init__(self, parameters: Argon2Parameters = PASSWORD_HASH_PARAMETERS) -> None:
        self.parameters = parameters
        self._hasher = PasswordHasher(
            time_cost=parameters.time_cost,
            memory_cost=parameters.memory_cost_kib,
            parallelism=parameters.parallelism,
            hash_len=parameters.hash_len,
            salt_len=parameters.salt_len,
            type=Type.ID,
        )
        self._dummy_hash: str | None = None

    def hash(self, password: str) -> str:
        """An encoded `$argon2id$...` string with a fresh random salt; policy is not checked
        here (call `check_password_policy` first) so rehashing an old password always works."""
        return self._hasher.hash(normalize_password(password))

    def verify(self, stored_hash: str, password: str) -> bool:
        """True when `password` matches; False on a mismatch. A stored value that is not an
        argon2 hash is data corruption, not a wrong password: it raises an internal error."""
        try:
            return self._hasher.verify(stored_hash, normalize_password(password))
        except VerificationError:
            return False
        except InvalidHashError:
            raise DomainError(
                "stored password hash is corrupt", ErrorCode.INTERNAL, "corrupt_password_hash"
            ) from None

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when the hash was made with other parameters (or another argon2 variant);
        the login handler then stores `hash(password)` after a successful verify."""
        return self._hasher.check_needs_rehash(stored_hash)

    def verify_nothing(self, password: str) -> None:
        """Spend one verification's worth of time and memory; always fails (see class doc)."""
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(32))
        self.verify(self._dummy_hash, password)
