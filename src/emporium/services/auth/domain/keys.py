"""Signing keys for access tokens: Ed25519, loaded from PEM, published as JWKs.

Why Ed25519 (JWS `alg` "EdDSA", RFC 8037) rather than ES256: signatures are deterministic, so
there is no per-signature nonce whose reuse or bias would leak the private key (the classic
ECDSA failure); keys have no parameters to get wrong; keys and signatures are small (32/64
bytes) and verification is fast. PyJWT (via cryptography) and Envoy/Istio's JWT filter both
support it. ES256 would only be preferable for a verifier that lacks EdDSA.

Key ids are RFC 7638 JWK thumbprints: derived from the public key itself, so every auth
replica configured with the same key agrees on the `kid` without extra configuration.

No key material lives in the repository. The auth service's `app.py` reads PEM bytes from a
configured file or environment variable and passes them to `signing_key_or_ephemeral`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from emporium.chassis.auth_tokens import (
    JWK,
    JWK_CURVE,
    JWK_KEY_TYPE,
    JWS_ALGORITHM,
    VerificationKey,
    jwk_thumbprint,
)

# VerificationKey and the thumbprint live in the chassis (emporium.chassis.auth_tokens)
# because every verifier needs them; they are re-exported here for the auth domain.
__all__ = [
    "JWK",
    "JWK_CURVE",
    "JWK_KEY_TYPE",
    "JWS_ALGORITHM",
    "SigningKey",
    "VerificationKey",
    "generate_signing_key",
    "jwk_thumbprint",
    "load_signing_key",
    "load_verification_key",
    "private_key_pem",
    "public_key_pem",
    "signing_key_or_ephemeral",
]


@dataclass(frozen=True)
class SigningKey:
    """The private key that signs new access tokens, with the `kid` put in their header."""

    kid: str
    private_key: Ed25519PrivateKey
    ephemeral: bool = False

    @classmethod
    def of(cls, private_key: Ed25519PrivateKey, *, ephemeral: bool = False) -> SigningKey:
        return cls(jwk_thumbprint(private_key.public_key()), private_key, ephemeral)

    def verification_key(self) -> VerificationKey:
        return VerificationKey(self.kid, self.private_key.public_key())

    def __repr__(self) -> str:  # never print key material in logs or tracebacks
        return f"SigningKey(kid={self.kid!r}, ephemeral={self.ephemeral})"


def generate_signing_key() -> SigningKey:
    """A fresh random key (for tests, and for the embedded profile: see below)."""
    return SigningKey.of(Ed25519PrivateKey.generate(), ephemeral=True)


def load_signing_key(pem: bytes, password: bytes | None = None) -> SigningKey:
    """An Ed25519 private key from PKCS#8 PEM (`openssl genpkey -algorithm ed25519`).

    ValueError (one line, no key material) when the PEM is unreadable or another key type.
    """
    try:
        key = serialization.load_pem_private_key(pem, password=password)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"cannot read the signing key PEM: {type(exc).__name__}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"signing key must be Ed25519, got {type(key).__name__}")
    return SigningKey.of(key)


def load_verification_key(pem: bytes) -> VerificationKey:
    """An Ed25519 public key from SubjectPublicKeyInfo PEM: a retired key kept for rotation."""
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"verification key must be Ed25519, got {type(key).__name__}")
    return VerificationKey.of(key)


def signing_key_or_ephemeral(pem: bytes | None, password: bytes | None = None) -> SigningKey:
    """The configured key, or a freshly generated one when none is configured.

    The ephemeral key is what lets the embedded profile start with nothing configured. Its
    price: it lives only in the auth process, so every access token dies when auth restarts
    (users refresh or log in again; verifiers see an unknown `kid` and must refetch the JWKS),
    and several auth replicas would each sign with a different key. Production configuration
    must therefore provide a PEM; `SigningKey.ephemeral` lets `app.py` log a warning.
    """
    if pem is None or not pem.strip():
        return generate_signing_key()
    return load_signing_key(pem, password)


def private_key_pem(key: SigningKey) -> bytes:
    """Unencrypted PKCS#8 PEM of `key` (for tests and a key-generation command)."""
    return key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: VerificationKey) -> bytes:
    return key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
