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

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import jwt

from emporium.chassis.auth_tokens import (
    ACCESS_TOKEN_TTL,
    CLOCK_SKEW_LEEWAY,
    REQUIRED_CLAIMS,
    TOKEN_AUDIENCE,
    TOKEN_ISSUER,
    TOKEN_TYPE,
    AccessClaims,
    AccessTokenVerifier,
    Jwks,
    aware,
    token_rejected,
)
from emporium.services.auth.domain.keys import (
    JWS_ALGORITHM,
    SigningKey,
    VerificationKey,
)

# Verification (claims, JWKS verifier, rejection reasons) is shared with every other service
# and lives in emporium.chassis.auth_tokens; signing and the key set are auth's alone.
__all__ = [
    "ACCESS_TOKEN_TTL",
    "CLOCK_SKEW_LEEWAY",
    "REQUIRED_CLAIMS",
    "TOKEN_AUDIENCE",
    "TOKEN_ISSUER",
    "TOKEN_TYPE",
    "AccessClaims",
    "AccessTokenVerifier",
    "Jwks",
    "KeySet",
    "revocation_ttl",
    "token_rejected",
]


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


def revocation_ttl(claims: AccessClaims, *, now: datetime) -> timedelta:
    """How long a denylist entry for this token's `jti` must live in kv: until no verifier
    would accept the token anyway (expiry plus leeway); never negative."""
    remaining = claims.expires_at + CLOCK_SKEW_LEEWAY - aware(now)
    return max(remaining, timedelta(0))
