"""auth-service domain: pure rules for passwords, emails, access tokens and refresh tokens.

No I/O here (no database, kv, gRPC or HTTP): handlers load state, call these functions with an
explicit `now`, and persist what they return. Submodules, each with its reasons:
`passwords` (argon2id + policy), `emails` (canonical addresses), `keys` (Ed25519 signing keys
and JWKs), `tokens` (access JWTs, KeySet, JWKS verification), `refresh` (rotating refresh
token families with reuse detection). The flows are drawn in docs/identity.md.
"""

from emporium.services.auth.domain.emails import EMAIL_FIELD, MAX_EMAIL_LENGTH, normalize_email
from emporium.services.auth.domain.keys import (
    JWS_ALGORITHM,
    SigningKey,
    VerificationKey,
    generate_signing_key,
    jwk_thumbprint,
    load_signing_key,
    load_verification_key,
    private_key_pem,
    public_key_pem,
    signing_key_or_ephemeral,
)
from emporium.services.auth.domain.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    PASSWORD_FIELD,
    PASSWORD_HASH_PARAMETERS,
    Argon2Parameters,
    PasswordHashing,
    check_password_policy,
    normalize_password,
)
from emporium.services.auth.domain.refresh import (
    REFRESH_TOKEN_TTL,
    REMEMBERED_GENERATIONS,
    SESSION_MAX_LIFETIME,
    FamilyStatus,
    Proof,
    RefreshFamily,
    RevocationReason,
    RotationAccepted,
    RotationRejected,
    family_id_of,
    hash_refresh_token,
    refresh_rejected,
)
from emporium.services.auth.domain.tokens import (
    ACCESS_TOKEN_TTL,
    CLOCK_SKEW_LEEWAY,
    TOKEN_AUDIENCE,
    TOKEN_ISSUER,
    TOKEN_TYPE,
    AccessClaims,
    AccessTokenVerifier,
    Jwks,
    KeySet,
    revocation_ttl,
    token_rejected,
)

__all__ = [
    "ACCESS_TOKEN_TTL",
    "CLOCK_SKEW_LEEWAY",
    "EMAIL_FIELD",
    "JWS_ALGORITHM",
    "MAX_EMAIL_LENGTH",
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "PASSWORD_FIELD",
    "PASSWORD_HASH_PARAMETERS",
    "REFRESH_TOKEN_TTL",
    "REMEMBERED_GENERATIONS",
    "SESSION_MAX_LIFETIME",
    "TOKEN_AUDIENCE",
    "TOKEN_ISSUER",
    "TOKEN_TYPE",
    "AccessClaims",
    "AccessTokenVerifier",
    "Argon2Parameters",
    "FamilyStatus",
    "Jwks",
    "KeySet",
    "PasswordHashing",
    "Proof",
    "RefreshFamily",
    "RevocationReason",
    "RotationAccepted",
    "RotationRejected",
    "SigningKey",
    "VerificationKey",
    "check_password_policy",
    "family_id_of",
    "generate_signing_key",
    "hash_refresh_token",
    "jwk_thumbprint",
    "load_signing_key",
    "load_verification_key",
    "normalize_email",
    "normalize_password",
    "private_key_pem",
    "public_key_pem",
    "refresh_rejected",
    "revocation_ttl",
    "signing_key_or_ephemeral",
    "token_rejected",
]
