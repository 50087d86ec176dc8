"""Proof of which service makes a call: each service signs with its own key, for one callee.

Every inter-service call carries `x-emporium-service-proof`, also when it forwards a user's
bearer token (the token says for whom, the proof says who is calling). The proof is a JWT
signed with the caller's Ed25519 key (`service_keys`): header `typ: svc+jwt`, claims
`iss` = `sub` = the calling identity, `aud` = the callee (the `<service>` of the method's
`emporium.<service>.v1` package), `iat`, `exp` = `iat` + 60 s. A proof for payment is
worthless at inventory, a stolen one for a minute, and no service can speak for another:
unlike one shared secret, the gateway's or cdn's key cannot make a proof that says `order`.

The client interceptor adds the proof (`ServiceIdentity.proof_for`, reused until half its
life has passed); the server interceptor checks it (`ServiceIdentity.verify`: signature by
a public key of the identity it names, audience, expiry with 10 s leeway, a lifetime no
longer than 60 s) and then the callee's table of accepted callers (`acl`). A proof is
not bound to one request: on the plain-text loopback of the embedded profile, and without
mTLS, whoever can read the traffic can replay it to the same callee for its minute (the
mesh's mTLS closes that in Kubernetes). A process installs its identity once at start
(`install`); the CLI's operator commands install `operator`'s.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from emporium.chassis.errors import DomainError, ErrorCode
from emporium.chassis.rpc.service_keys import (
    PublicKeyring,
    checked_name,
    load_private_key,
    public_keys_dir,
)

SERVICE_PROOF_KEY: Final = "x-emporium-service-proof"
PROOF_TYPE: Final = "svc+jwt"
PROOF_ALGORITHM: Final = "EdDSA"
PROOF_TTL_SECONDS: Final = 60
CLOCK_LEEWAY_SECONDS: Final = 10
_VERIFIED_CACHE_SIZE: Final = 4096
_REQUIRED: Final = ["iss", "sub", "aud", "iat", "exp"]


def proof_rejected(reason: str, message: str) -> DomainError:
    """UNAUTHENTICATED with a stable reason (`service_proof_*`)."""
    return DomainError(message, ErrorCode.UNAUTHENTICATED, reason)


def audience_of(method: str) -> str | None:
    """`payment` for `/emporium.payment.v1.PaymentService/Charge`; None for methods outside
    Emporium's packages (the standard health service), which need no proof."""
    package = method.lstrip("/").split("/", 1)[0].split(".")
    if len(package) >= 3 and package[0] == "emporium" and package[1]:
        return package[1]
    return None


class ServiceIdentity:
    """This process's identity: its name and private key, to prove itself, and the keyring
    of everyone's public keys, to check the proofs of its callers."""

    def __init__(
        self,
        name: str,
        private_key: Ed25519PrivateKey,
        keyring: PublicKeyring,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = checked_name(name)
        self._key = private_key
        self.keyring = keyring
        self._clock = clock
        self._issued: dict[str, tuple[int, str]] = {}
        self._verified: dict[str, tuple[str, str, int]] = {}  # proof -> (caller, aud, exp)

    def proof_for(self, audience: str) -> str:
        """A proof for calls to `audience`, reused while more than half its life is left."""
        now = int(self._clock())
        cached = self._issued.get(audience)
        if cached and cached[0] - now > PROOF_TTL_SECONDS // 2:
            return cached[1]
        claims = {
            "iss": self.name,
            "sub": self.name,
            "aud": audience,
            "iat": now,
            "exp": now + PROOF_TTL_SECONDS,
        }
        proof = jwt.encode(claims, self._key, PROOF_ALGORITHM, headers={"typ": PROOF_TYPE})
        self._issued[audience] = (now + PROOF_TTL_SECONDS, proof)
        return proof

    def verify(self, proof: str, audience: str) -> str:
        """The identity a valid proof for `audience` names; UNAUTHENTICATED otherwise."""
        cached = self._verified.get(proof)
        if cached is not None and cached[1] == audience:
            if cached[2] + CLOCK_LEEWAY_SECONDS > self._clock():
                return cached[0]
            del self._verified[proof]
        caller, expiry = self._check(proof, audience)
        if len(self._verified) >= _VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[proof] = (caller, audience, expiry)
        return caller

    def _check(self, proof: str, audience: str) -> tuple[str, int]:
        try:
            header = jwt.get_unverified_header(proof)
            issuer = jwt.decode(proof, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            raise proof_rejected("service_proof_malformed", "malformed service proof") from None
        if header.get("typ") != PROOF_TYPE or header.get("alg") != PROOF_ALGORITHM:
            raise proof_rejected("service_proof_malformed", "not a service proof")
        if not isinstance(issuer, str) or not issuer:
            raise proof_rejected("service_proof_malformed", "the service proof names nobody")
        claims = self._decode(proof, issuer, audience)
        issued, expiry, now = claims["iat"], claims["exp"], self._clock()
        if not isinstance(issued, int) or not isinstance(expiry, int):
            raise proof_rejected("service_proof_malformed", "malformed service proof")
        if claims["sub"] != issuer or not 0 < expiry - issued <= PROOF_TTL_SECONDS:
            raise proof_rejected("service_proof_invalid", "invalid service proof")
        if issued - CLOCK_LEEWAY_SECONDS > now:
            raise proof_rejected("service_proof_invalid", "service proof issued in the future")
        if expiry + CLOCK_LEEWAY_SECONDS <= now:
            raise proof_rejected("service_proof_expired", "expired service proof")
        return issuer, expiry

    def _decode(self, proof: str, issuer: str, audience: str) -> dict[str, Any]:
        """The claims, with the signature checked against `issuer`'s keys (re-read once if
        none matches: the issuer may have started, or rotated its key, since)."""
        for attempt in range(2):
            for key in self.keyring.keys(issuer):
                try:
                    claims: dict[str, Any] = jwt.decode(
                        proof,
                        key,
                        algorithms=[PROOF_ALGORITHM],
                        audience=audience,
                        issuer=issuer,
                        # times are checked by `_check`, on this identity's clock
                        options={
                            "require": _REQUIRED,
                            "verify_exp": False,
                            "verify_iat": False,
                            "verify_nbf": False,
                        },
                    )
                    return claims
                except jwt.InvalidSignatureError:
                    continue
                except jwt.InvalidAudienceError:
                    raise proof_rejected(
                        "service_proof_wrong_audience", f"the service proof is not for {audience}"
                    ) from None
                except jwt.PyJWTError:
                    raise proof_rejected("service_proof_invalid", "invalid service proof") from None
            if attempt == 0 and not self.keyring.reload(issuer):
                break
        raise proof_rejected("service_proof_invalid", f"no valid signature of {issuer}")


def load_identity(
    name: str, data_dir: Path, environ: Mapping[str, str] = os.environ
) -> ServiceIdentity:
    """`name`'s identity from its configured key (or the embedded profile's), with the
    keyring of the configured public keys directory (`service_keys`)."""
    key = load_private_key(name, data_dir, environ)
    keyring = PublicKeyring(public_keys_dir(data_dir, environ))
    keyring.add(name, key.public_key())  # a process may call itself (and in tests does)
    return ServiceIdentity(name, key, keyring)


_installed: ServiceIdentity | None = None


def install(identity: ServiceIdentity | None) -> None:
    """Make `identity` this process's, for outgoing proofs and incoming checks (once, at
    start: `run_service`, the CLI)."""
    global _installed
    _installed = identity


def installed() -> ServiceIdentity | None:
    return _installed


def proven_caller(metadata: Iterable[tuple[str, Any]], audience: str) -> str | None:
    """The identity that proved itself on an incoming call to `audience`; None when the
    call carries no proof. A proof that does not check out is UNAUTHENTICATED."""
    proofs = [value for key, value in metadata if key.lower() == SERVICE_PROOF_KEY]
    if not proofs:
        return None
    if len(proofs) > 1 or not isinstance(proofs[0], str):
        raise proof_rejected("service_proof_malformed", "one service proof per call")
    identity = installed()
    if identity is None:
        raise proof_rejected("service_proof_unverifiable", "this process cannot check proofs")
    return identity.verify(proofs[0], audience)
