"""Refresh tokens: opaque, rotated on every use, with reuse detection per token family.

A login starts a *family* (also the session: its id is the access tokens' `sid`). The family
has exactly one valid refresh token at a time. Refreshing presents it and gets a new one; the
presented one becomes used. Presenting a used token means two parties hold tokens of this
family (the legitimate client and a thief, and we cannot tell which is which), so the whole
family is revoked: both must log in again, and the session's access tokens stop working at
once (ValidateToken checks the family). This is the OAuth 2.0 Security BCP's "refresh token
rotation" with reuse detection.

Token format: `<family_id>.<secret>`, both URL-safe base64 of random bytes (128 and 256 bits).
The family id only *locates* the family (one kv read); it is not a secret, since every access
token of the session carries it as `sid`. What proves possession is the secret: only SHA-256
of the whole token is stored, for the current token and for the last
`REMEMBERED_GENERATIONS` rotated ones, so a leaked kv dump cannot be replayed and a token
built from an access token (`<sid>.<anything>`) matches nothing. Every decision starts with
that proof (`RefreshFamily.proof`, constant-time comparisons of every stored hash):

- the current token: rotate (or, for logout, revoke);
- a token this family really issued before (a used one): reuse, revoke the family;
- anything else: `refresh_token_invalid`, and nothing changes. A wrong token never revokes
  a session it does not prove to hold.

A plain hash (no salt, no slow KDF) is enough because the secret has 256 bits of entropy:
there is nothing to brute-force. A used token older than the remembered generations is
simply invalid (it no longer triggers reuse detection; it never rotates either).

Known trade-off: two concurrent refreshes with the same token (two tabs) look like reuse and
end the session; clients must serialise refreshes. Everything here is pure: the caller loads a
`RefreshFamily`, calls a method with `now`, and persists the returned state.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum
from typing import Any, ClassVar, Literal

from emporium.chassis.errors import DomainError, ErrorCode

REFRESH_TOKEN_TTL = timedelta(days=14)
"""Sliding: each rotation issues a token valid for 14 more days, so an active user stays in."""

SESSION_MAX_LIFETIME = timedelta(days=90)
"""Absolute cap: a family older than this cannot be refreshed, however active; re-login."""

REMEMBERED_GENERATIONS = 32
"""How many used tokens per family are still recognised as reuse (about 8 hours of
refreshing every 15 minutes). 32 SHA-256 hex digests: about 2 KiB per session in kv."""

_FAMILY_ID_BYTES = 16
_SECRET_BYTES = 32
_TOKEN_SHAPE = re.compile(r"([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})")


class FamilyStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class Proof(Enum):
    """What a presented refresh token proves about a family."""

    CURRENT = "current"  # the one valid token: the holder may rotate or end the session
    USED = "used"  # a token the family issued before: a second holder exists (reuse)
    NOTHING = "nothing"  # not a token of this family: no decision may rest on it


class RevocationReason(StrEnum):
    LOGOUT = "logout"
    REUSE_DETECTED = "reuse_detected"
    ADMIN = "admin"
    PASSWORD_CHANGED = "password_changed"


def hash_refresh_token(token: str) -> str:
    """Hex SHA-256 of the token: the only form in which a refresh token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def family_id_of(token: str) -> str:
    """The family a presented token claims to belong to; 401 if it is not shaped like ours."""
    match = _TOKEN_SHAPE.fullmatch(token)
    if match is None:
        raise refresh_rejected("refresh_token_invalid")
    return match.group(1)


def refresh_rejected(reason: str) -> DomainError:
    """UNAUTHENTICATED (HTTP 401) with a stable reason, same message for every case."""
    return DomainError("invalid refresh token", ErrorCode.UNAUTHENTICATED, reason)


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


def _new_token(family_id: str) -> str:
    return f"{family_id}.{secrets.token_urlsafe(_SECRET_BYTES)}"


@dataclass(frozen=True)
class RefreshFamily:
    """Persisted state of one session's refresh tokens (kv value via `to_record`)."""

    family_id: str
    user_id: str
    current_hash: str
    generation: int
    created_at: datetime
    expires_at: datetime
    status: FamilyStatus = FamilyStatus.ACTIVE
    revoked_at: datetime | None = None
    revoked_reason: str | None = None
    previous_hashes: tuple[str, ...] = ()  # newest first, at most REMEMBERED_GENERATIONS

    @classmethod
    def start(cls, user_id: str, *, now: datetime) -> tuple[RefreshFamily, str]:
        """A new family for a login, and its first refresh token (plaintext, shown once)."""
        now = _aware(now)
        family_id = secrets.token_urlsafe(_FAMILY_ID_BYTES)
        token = _new_token(family_id)
        family = cls(
            family_id=family_id,
            user_id=user_id,
            current_hash=hash_refresh_token(token),
            generation=1,
            created_at=now,
            expires_at=now + REFRESH_TOKEN_TTL,
        )
        return family, token

    @property
    def session_id(self) -> str:
        return self.family_id

    @property
    def session_ends_at(self) -> datetime:
        return self.created_at + SESSION_MAX_LIFETIME

    def is_active(self, *, now: datetime) -> bool:
        """Whether the session still stands: what ValidateToken asks for a token's `sid`."""
        return self.status is FamilyStatus.ACTIVE and _aware(now) < self.session_ends_at

    def proof(self, presented: str) -> Proof:
        """What `presented` proves, comparing its hash with every stored one in constant
        time (no early exit, so timing tells nothing about which hash, if any, matched)."""
        if _TOKEN_SHAPE.fullmatch(presented) is None or family_id_of(presented) != self.family_id:
            return Proof.NOTHING
        digest = hash_refresh_token(presented)
        current = hmac.compare_digest(digest, self.current_hash)
        used = False
        for previous in self.previous_hashes:
            used |= hmac.compare_digest(digest, previous)
        if current:
            return Proof.CURRENT
        return Proof.USED if used else Proof.NOTHING

    def rotate(self, presented: str, *, now: datetime) -> RotationAccepted | RotationRejected:
        """Exchange the presented token for a new one, or say why not (and persist `family`
        of the result either way: a reuse revokes the family)."""
        now = _aware(now)
        proof = self.proof(presented)
        if proof is Proof.NOTHING:
            return RotationRejected(self, "refresh_token_invalid")
        if self.status is FamilyStatus.REVOKED:
            return RotationRejected(self, "session_revoked")
        if proof is Proof.USED:
            revoked = self.revoke(now=now, reason=RevocationReason.REUSE_DETECTED)
            return RotationRejected(revoked, "refresh_token_reused")
        if now >= self.expires_at or now >= self.session_ends_at:
            return RotationRejected(self, "refresh_token_expired")
        token = _new_token(self.family_id)
        rotated = replace(
            self,
            current_hash=hash_refresh_token(token),
            generation=self.generation + 1,
            expires_at=min(now + REFRESH_TOKEN_TTL, self.session_ends_at),
            previous_hashes=(self.current_hash, *self.previous_hashes)[:REMEMBERED_GENERATIONS],
        )
        return RotationAccepted(rotated, token)

    def revoke(self, *, now: datetime, reason: str) -> RefreshFamily:
        """Revoked for good; revoking again keeps the first time and reason (idempotent)."""
        if self.status is FamilyStatus.REVOKED:
            return self
        return replace(
            self, status=FamilyStatus.REVOKED, revoked_at=_aware(now), revoked_reason=reason
        )

    def kv_ttl(self, *, now: datetime) -> timedelta:
        """How long the store keeps the record: until the current token expires (never past
        the session's end). Until then a replayed old token is recognised as reuse; after it,
        every token of the family is dead anyway and an unknown family is simply invalid."""
        return max(self.expires_at - _aware(now), timedelta(seconds=1))

    def to_record(self) -> dict[str, Any]:
        """JSON-ready dict for the kv store."""
        return {
            "family_id": self.family_id,
            "user_id": self.user_id,
            "current_hash": self.current_hash,
            "generation": self.generation,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "status": self.status.value,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "revoked_reason": self.revoked_reason,
            "previous_hashes": list(self.previous_hashes),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RefreshFamily:
        revoked_at = record.get("revoked_at")
        return cls(
            family_id=str(record["family_id"]),
            user_id=str(record["user_id"]),
            current_hash=str(record["current_hash"]),
            generation=int(record["generation"]),
            created_at=datetime.fromisoformat(record["created_at"]),
            expires_at=datetime.fromisoformat(record["expires_at"]),
            status=FamilyStatus(record["status"]),
            revoked_at=datetime.fromisoformat(revoked_at) if revoked_at else None,
            revoked_reason=record.get("revoked_reason"),
            previous_hashes=tuple(str(h) for h in record.get("previous_hashes") or ()),
        )


@dataclass(frozen=True)
class RotationAccepted:
    family: RefreshFamily
    token: str
    accepted: ClassVar[Literal[True]] = True


@dataclass(frozen=True)
class RotationRejected:
    """`family` is the state to persist (revoked when `reason` is refresh_token_reused)."""

    family: RefreshFamily
    reason: str
    accepted: ClassVar[Literal[False]] = False

    def error(self) -> DomainError:
        return refresh_rejected(self.reason)
