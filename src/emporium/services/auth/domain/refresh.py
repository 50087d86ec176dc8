"""Refresh tokens: opaque, rotated on every use, with reuse detection per token family.

A login starts a *family* (also the session: its id is the access tokens' `sid`). The family
has exactly one valid refresh token at a time. Refreshing presents it and gets a new one; the
presented one becomes used. Presenting a used token means two parties hold tokens of this
family (the legitimate client and a thief, and we cannot tell which is which), so the whole
family is revoked: both must log in again, and the session's access tokens stop working at
once (ValidateToken checks the family). This is the OAuth 2.0 Security BCP's "refresh token
rotation" with reuse detection.

Token format: `<family_id>.<secret>`, both URL-safe base64 of random bytes (128 and 256 bits).
The family id lets the store load the family with one kv read; only SHA-256 of the whole token
is stored, so a leaked kv dump cannot be replayed. A plain hash (no salt, no slow KDF) is
enough because the secret has 256 bits of entropy: there is nothing to brute-force.
Any token naming a known family but not matching its current hash counts as reuse: only a
holder of a real token of that family can know the family id.

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
from enum import StrEnum
from typing import Any, ClassVar, Literal

from emporium.chassis.errors import DomainError, ErrorCode

REFRESH_TOKEN_TTL = timedelta(days=14)
"""Sliding: each rotation issues a token valid for 14 more days, so an active user stays in."""

SESSION_MAX_LIFETIME = timedelta(days=90)
"""Absolute cap: a family older than this cannot be refreshed, however active; re-login."""

_FAMILY_ID_BYTES = 16
_SECRET_BYTES = 32
_TOKEN_SHAPE = re.compile(r"([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})")


class FamilyStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


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

    def rotate(self, presented: str, *, now: datetime) -> RotationAccepted | RotationRejected:
        """Exchange the presented token for a new one, or say why not (and persist `family`
        of the result either way: a reuse revokes the family)."""
        now = _aware(now)
        if _TOKEN_SHAPE.fullmatch(presented) is None or family_id_of(presented) != self.family_id:
            return RotationRejected(self, "refresh_token_invalid")
        if self.status is FamilyStatus.REVOKED:
            return RotationRejected(self, "session_revoked")
        if not hmac.compare_digest(hash_refresh_token(presented), self.current_hash):
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
