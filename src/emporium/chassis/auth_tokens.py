"""Access-token verification shared by auth-service, the gateway and every backend.

An Emporium access token is a JWT signed by auth-service with Ed25519 (JWS `alg` EdDSA,
RFC 8037), header `typ: at+jwt` and `kid`, claims `iss, aud, sub, iat, exp, jti, roles, sid`
(docs/identity.md). Verifying one needs only auth's public keys, published as a JWKS, so
this module is pure (PyJWT + cryptography, no I/O): auth-service signs with its own keys and
verifies with them, and every other process verifies with a JWKS it fetched
(`chassis.rpc.jwks.JwksTokenVerifier`). Keeping one verifier means the rules (algorithm
pinning, `typ`, issuer, audience, clock leeway) cannot drift between services.

Time is never read from the system clock here: callers pass `now`, so tests control expiry.
A signature cannot be revoked: logout is auth's session check on top (ValidateToken).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from emporium.chassis.errors import DomainError, ErrorCode

JWS_ALGORITHM = "EdDSA"
JWK_KEY_TYPE = "OKP"
JWK_CURVE = "Ed25519"

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

JWK = dict[str, str]
Jwks = dict[str, list[dict[str, str]]]


def token_rejected(reason: str, message: str = "invalid access token") -> DomainError:
    """UNAUTHENTICATED (HTTP 401) with a stable `reason` (token_expired, token_invalid...)."""
    return DomainError(message, ErrorCode.UNAUTHENTICATED, reason)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def aware(now: datetime) -> datetime:
    """`now` in UTC; a naive datetime is a programming error (which zone would it be?)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


def _raw_public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def jwk_thumbprint(public_key: Ed25519PublicKey) -> str:
    """RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order, so
    every replica configured with one key derives the same `kid`."""
    members = {"crv": JWK_CURVE, "kty": JWK_KEY_TYPE, "x": b64url(_raw_public_bytes(public_key))}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode("ascii")
    return b64url(hashlib.sha256(canonical).digest())


@dataclass(frozen=True)
class VerificationKey:
    """A public key and its `kid`: what a verifier needs, and all a JWKS ever contains."""

    kid: str
    public_key: Ed25519PublicKey

    @classmethod
    def of(cls, public_key: Ed25519PublicKey) -> VerificationKey:
        return cls(jwk_thumbprint(public_key), public_key)

    def to_jwk(self) -> JWK:
        return {
            "kty": JWK_KEY_TYPE,
            "crv": JWK_CURVE,
            "x": b64url(_raw_public_bytes(self.public_key)),
            "kid": self.kid,
            "alg": JWS_ALGORITHM,
            "use": "sig",
        }

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, object]) -> VerificationKey:
        """Parse one Ed25519 JWK; ValueError when it is not one (or is malformed)."""
        if jwk.get("kty") != JWK_KEY_TYPE or jwk.get("crv") != JWK_CURVE:
            raise ValueError("not an Ed25519 JWK")
        if jwk.get("alg", JWS_ALGORITHM) != JWS_ALGORITHM or jwk.get("use", "sig") != "sig":
            raise ValueError("JWK is not meant for EdDSA signatures")
        x, kid = jwk.get("x"), jwk.get("kid")
        if not isinstance(x, str) or not isinstance(kid, str) or not kid:
            raise ValueError("JWK needs string members x and kid")
        raw = b64url_decode(x)
        if len(raw) != 32:
            raise ValueError("Ed25519 public key must be 32 bytes")
        return cls(kid, Ed25519PublicKey.from_public_bytes(raw))


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
        """Claims of a fresh access token (fresh `jti`, whole-second times); auth signs them."""
        issued = aware(now).replace(microsecond=0)
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
        keys = [
            VerificationKey.from_jwk(entry)
            for entry in entries
            if isinstance(entry, dict) and entry.get("kty") == JWK_KEY_TYPE
        ]
        return cls(keys, **options)

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def key_id(self, token: str) -> str:
        """The `kid` a token names (unverified), so a caller can refetch the JWKS on a miss."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise token_rejected("token_malformed") from None
        return str(header.get("kid"))

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
        self._check_times(claims, aware(now))
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
