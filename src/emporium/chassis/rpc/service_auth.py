"""Proof that a call comes from one of the platform's own services.

A user's call carries the user's bearer token, which every backend verifies; a service acting
on its own behalf (a consumer, a saga step, the gateway creating a profile) has no user token,
and identity headers alone could be written by anyone who reaches a backend's port. So a
system caller also sends `x-emporium-service-proof`: `v1.<service>.<expiry>.<hmac>`, an
HMAC-SHA256 over the rest with the platform's service secret, valid for two minutes. A
backend that verifies tokens accepts a system identity only with a valid proof for the
service it names.

The secret comes from `EMPORIUM_SERVICE_SECRET` (production: a Kubernetes Secret), else from
`<data_dir>/service-secret`, created on first use with 32 random bytes and mode 0600 (the
embedded profile: every local process shares the data directory). It is never in the repo.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

from emporium.chassis.config import ConfigError
from emporium.chassis.errors import unauthenticated

SERVICE_PROOF_KEY: Final = "x-emporium-service-proof"
SECRET_ENV: Final = "EMPORIUM_SERVICE_SECRET"
SECRET_FILE: Final = "service-secret"
PROOF_TTL_SECONDS: Final = 120
MIN_SECRET_BYTES: Final = 16
_VERSION: Final = "v1"


class ServiceProof:
    """Issues and checks service proofs with one shared secret."""

    def __init__(self, secret: bytes, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the service secret must have at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self._clock = clock
        self._issued: dict[str, tuple[int, str]] = {}

    def _mac(self, body: str) -> str:
        return hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()

    def issue(self, service: str) -> str:
        """A proof for `service`, reused until half its lifetime has passed."""
        if not service or "." in service:
            raise ValueError(f"invalid service name {service!r}")
        now = int(self._clock())
        cached = self._issued.get(service)
        if cached and cached[0] - now > PROOF_TTL_SECONDS // 2:
            return cached[1]
        expiry = now + PROOF_TTL_SECONDS
        body = f"{_VERSION}.{service}.{expiry}"
        proof = f"{body}.{self._mac(body)}"
        self._issued[service] = (expiry, proof)
        return proof

    def verify(self, proof: str) -> str:
        """The service a valid proof names; UNAUTHENTICATED for anything else."""
        parts = proof.split(".")
        if len(parts) != 4:
            raise unauthenticated("malformed service proof")
        version, service, expiry, mac = parts
        body = f"{version}.{service}.{expiry}"
        if version != _VERSION or not service or not expiry.isdigit():
            raise unauthenticated("malformed service proof")
        if not hmac.compare_digest(mac, self._mac(body)):
            raise unauthenticated("invalid service proof")
        if int(expiry) <= self._clock():
            raise unauthenticated("expired service proof")
        return service


_installed: ServiceProof | None = None


def install(proof: ServiceProof | None) -> None:
    """Make `proof` this process's issuer and checker (done once at service start)."""
    global _installed
    _installed = proof


def installed() -> ServiceProof | None:
    return _installed


def load_service_secret(data_dir: Path, environ: Mapping[str, str] = os.environ) -> bytes:
    """The secret from the environment, else from `<data_dir>/service-secret` (created
    atomically if absent, so processes starting together agree on one)."""
    given = environ.get(SECRET_ENV, "")
    if given:
        if len(given.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"{SECRET_ENV}: must be at least {MIN_SECRET_BYTES} characters")
        return given.encode()
    path = Path(data_dir) / SECRET_FILE
    try:
        if not path.exists():
            _create_secret_file(path)
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"{SECRET_ENV}: not set, and {path} is unusable: {exc}") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(f"{SECRET_ENV}: not set, and {path} holds too short a secret")
    return secret


def _create_secret_file(path: Path) -> None:
    """Write a fresh secret beside `path` and link it into place; whoever links first wins
    and everybody reads the winner's (no reader ever sees a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".service-secret-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
        os.chmod(temp, 0o600)
        with contextlib.suppress(FileExistsError):  # another process won: read theirs
            os.link(temp, path)
    finally:
        os.unlink(temp)
