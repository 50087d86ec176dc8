"""Access tokens: short-lived EdDSA-signed JWTs, a rotating key set, and JWKS verification.

An access token is a bearer credential the gateway and backends can check without calling
anybody: the signature (public key from the JWKS) and the claims below. It is short-lived
because a signature cannot be taken back; immediate logout is the auth service's session
check on top (see docs/identity.md): every token names its session (`sid`), and
ValidateToken rejects tokens whose session is revoked in kv.

Claims (RFC 7519 / RFC 9068 style): `iss`, `aud`, `sub` (user id), `iat`, `exp`, `jti`
(unique token id), `roles` (list of role names), `sid` (session = refresh token family).
Header: `alg` EdDSA, `typ` at+jwt (so an ID token or other JWT is never accepted as an access
token), `kid` (which key signed it).

Time is never read from the system clock here: callers pass `now`, so tests control expiry.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from emporium.chassis.errors import DomainError, ErrorCode
from emporium.services.auth.domain.keys import (
    JWS_ALGORITHM,
    SigningKey,
    VerificationKey,
)

ACCESS_TOKEN_TTL = timedelta(minutes=15)
"""Short enough that a leaked token is useful only briefly, long enough that clients refresh
rarely. Logout does not wait for it (session revocation is checked at once)."""

CLOCK_SKEW_LEEWAY = timedelta(seconds=30)
"""Tolerated clock difference between the signer and a verifier, applied to `exp` and `iat`.
NTP keeps hosts within milliseconds; 30 s covers a badly synced laptop or VM resume."""

TOKEN_ISSUER = "emporium-auth"
TOKEN_AUDIENCE = "emporium"
TOKEN_TYPE = "at+jwt"
REQUIRED_CLAIMS = ("iss", "aud", "sub", "iat", "exp", "jti", "roles", "sid")

Jwks = dict[str, list[dict[str, str]]]


def token_rejected(reason: str, message: str = "invalid access token") -> DomainError:
    """UNAUTHENTICATED (HTTP 401) with a stable `reason` (token_expired, token_invalid...)."""
    return DomainError(message, ErrorCode.UNAUTHENTICATED, reason)


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


def _from_epoch(value: object) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise token_rejected("token_invalid")
    return datetime.fromtimestamp(int(value), UTC)


@dataclass(frozen=True)
class AccessClaims:
    """What an access token says; times are whole seconds (JWT NumericDate)."""

    subject: str
    roles: tuple[str, ...]
    session_id: str
    token_id: str
    issued_at: datetime
    expires_at: datetime
    issuer: str = TOKEN_ISSUER
    audience: str = TOKEN_AUDIENCE

    @classmethod
    def new(
        cls,
        *,
        subject: str,
        roles: Iterable[str],
        session_id: str,
        now: datetime,
        ttl: timedelta = ACCESS_TOKEN_TTL,
        issuer: str = TOKEN_ISSUER,
        audience: str = TOKEN_AUDIENCE,
    ) -> AccessClaims:
        issued = _aware(now).replace(microsecond=0)
        return cls(
            subject=subject,
            roles=tuple(sorted(set(roles))),
            session_id=session_id,
            token_id=secrets.token_urlsafe(16),
            issued_at=issued,
            expires_at=issued + ttl,
            issuer=issuer,
            audience=audience,
        )

    @property
    def expires_in(self) -> int:
        """Seconds of validity: the `expires_in` of the login/refresh response."""
        return int((self.expires_at - self.issued_at).total_seconds())

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def to_payload(self) -> dict[str, Any]:
        return {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": self.subject,
            "iat": int(self.issued_at.timestamp()),
            "exp": int(self.expires_at.timestamp()),
            "jti": self.token_id,
            "roles": list(self.roles),
            "sid": self.session_id,
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> AccessClaims:
        roles = payload.get("roles")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise token_rejected("token_invalid")
        texts = [payload.get(name) for name in ("sub", "sid", "jti", "iss", "aud")]
        if not all(isinstance(t, str) and t for t in texts):
            raise token_rejected("token_invalid")
        return cls(
            subject=payload["sub"],
            roles=tuple(roles),
            session_id=payload["sid"],
            token_id=payload["jti"],
            issued_at=_from_epoch(payload["iat"]),
            expires_at=_from_epoch(payload["exp"]),
            issuer=payload["iss"],
            audience=payload["aud"],
        )


@dataclass(frozen=True)
class KeySet:
    """The current signing key plus the public halves of retired keys.

    Rotation without logging everybody out: `rotate(new)` starts signing with `new` and keeps
    the old public key in the JWKS, so tokens it signed keep verifying until they expire.
    Call `retire(kid)` once ACCESS_TOKEN_TTL + CLOCK_SKEW_LEEWAY + the verifiers' JWKS cache
    time have passed since the rotation; from then on those tokens fail (`token_key_unknown`).
    """

    current: SigningKey
    previous: tuple[VerificationKey, ...] = field(default=())

    def sign(self, claims: AccessClaims) -> str:
        headers = {"kid": self.current.kid, "typ": TOKEN_TYPE}
        return jwt.encode(
            claims.to_payload(), self.current.private_key, algorithm=JWS_ALGORITHM, headers=headers
        )

    def rotate(self, new_key: SigningKey) -> KeySet:
        if new_key.kid == self.current.kid:
            return self
        kept = tuple(k for k in self.previous if k.kid != new_key.kid)
        return KeySet(new_key, (self.current.verification_key(), *kept))

    def retire(self, kid: str) -> KeySet:
        """Drop a previous public key (the current one cannot be retired: rotate first)."""
        if kid == self.current.kid:
            raise ValueError("cannot retire the current signing key; rotate first")
        return replace(self, previous=tuple(k for k in self.previous if k.kid != kid))

    def verification_keys(self) -> tuple[VerificationKey, ...]:
        return (self.current.verification_key(), *self.previous)

    def jwks(self) -> Jwks:
        """RFC 7517 JWK Set of public keys only: safe to serve to anyone."""
        return {"keys": [k.to_jwk() for k in self.verification_keys()]}

    def verifier(self, **options: Any) -> AccessTokenVerifier:
        return AccessTokenVerifier(self.verification_keys(), **options)


class AccessTokenVerifier:
    """Checks access tokens against public keys only (a JWKS): no secret is needed.

    Rejections raise an UNAUTHENTICATED DomainError whose reason is one of `token_malformed`,
    `token_key_unknown` (refetch the JWKS, then retry once), `token_invalid` (bad signature,
    wrong issuer/audience/type, missing claims), `token_expired`, `token_not_yet_valid`.
    """

    def __init__(
        self,
        keys: Iterable[VerificationKey],
        *,
        issuer: str = TOKEN_ISSUER,
        audience: str = TOKEN_AUDIENCE,
        leeway: timedelta = CLOCK_SKEW_LEEWAY,
    ) -> None:
        self._keys = {k.kid: k for k in keys}
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any], **options: Any) -> AccessTokenVerifier:
        """Ed25519 keys of a JWK Set; other key types are skipped (they cannot sign ours)."""
        entries = jwks.get("keys")
        if not isinstance(entries, list):
            raise ValueError("a JWKS needs a 'keys' list")
        keys = []
        for entry in entries:
            if isinstance(entry, dict) and entry.get("kty") == "OKP":
                keys.append(VerificationKey.from_jwk(entry))
        return cls(keys, **options)

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def verify(self, token: str, *, now: datetime) -> AccessClaims:
        key = self._key_for(token)
        try:
            payload = jwt.decode(
                token,
                key.public_key,
                algorithms=[JWS_ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                # time claims are checked below against the injected clock, not time.time()
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": list(REQUIRED_CLAIMS),
                },
            )
        except jwt.InvalidTokenError:
            raise token_rejected("token_invalid") from None
        claims = AccessClaims.from_payload(payload)
        self._check_times(claims, _aware(now))
        return claims

    def _key_for(self, token: str) -> VerificationKey:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise token_rejected("token_malformed") from None
        if header.get("alg") != JWS_ALGORITHM or header.get("typ") != TOKEN_TYPE:
            raise token_rejected("token_invalid")
        key = self._keys.get(str(header.get("kid")))
        if key is None:
            raise token_rejected("token_key_unknown", "access token signed by an unknown key")
        return key

    def _check_times(self, claims: AccessClaims, now: datetime) -> None:
        if now >= claims.expires_at + self.leeway:
            raise token_rejected("token_expired", "access token expired")
        if claims.issued_at > now + self.leeway:
            raise token_rejected("token_not_yet_valid", "access token issued in the future")


def revocation_ttl(claims: AccessClaims, *, now: datetime) -> timedelta:
    """How long a denylist entry for this token's `jti` must live in kv: until no verifier
    would accept the token anyway (expiry plus leeway); never negative."""
    remaining = claims.expires_at + CLOCK_SKEW_LEEWAY - _aware(now)
    return max(remaining, timedelta(0))
