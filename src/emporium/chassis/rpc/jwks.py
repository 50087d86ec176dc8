"""Token verifiers for gRPC servers (`ServiceApp.verifier`), backed by auth-service.

Two flavours, both `identity.TokenVerifier`s:

- `JwksTokenVerifier`: fetches auth's public keys once (`GetJwks`), caches them and checks
  signature, `typ`, issuer, audience and expiry locally (`chassis.auth_tokens`). No network
  hop per call; a token signed by a key it does not know makes it refetch the JWKS (at most
  once per `refetch_interval`), which is how key rotation reaches verifiers. It cannot see a
  logout before the token expires (15 minutes at most).
- `ValidatingTokenVerifier`: asks auth's `ValidateToken` on every call, which adds the
  session check, so a logged-out token is refused at once. DESIGN.md's edge user -> auth.

Both fail closed: auth unreachable means UNAUTHENTICATED or UNAVAILABLE, never a pass.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc

from emporium.chassis.auth_tokens import AccessClaims, AccessTokenVerifier, token_rejected
from emporium.chassis.errors import DomainError, ErrorCode
from emporium.chassis.rpc.client import create_channel, domain_error_from_rpc
from emporium.chassis.rpc.identity import Caller
from emporium.contracts.rpc.auth.v1 import auth_pb2, auth_pb2_grpc

JWKS_TIMEOUT_SECONDS = 2.0
VALIDATE_TIMEOUT_SECONDS = 2.0
REFETCH_INTERVAL_SECONDS = 5.0
AUTH_IDEMPOTENT = (
    "emporium.auth.v1.AuthService/GetJwks",
    "emporium.auth.v1.AuthService/ValidateToken",
)


def jwks_from_response(response: Any) -> dict[str, list[dict[str, str]]]:
    """The RFC 7517 dict of a `GetJwksResponse` (empty members dropped)."""
    keys = []
    for key in response.keys:
        members = {
            name: getattr(key, name)
            for name in ("kid", "kty", "alg", "use", "crv", "x", "y", "n", "e")
            if getattr(key, name)
        }
        keys.append(members)
    return {"keys": keys}


def _system_caller() -> Caller:
    """Verification calls act for nobody: they must not forward the token being checked."""
    return Caller.anonymous()


class _AuthClient:
    """One lazily opened channel to auth-service, shared by a verifier's calls."""

    def __init__(self, auth_target: str, service: str, timeout: float) -> None:
        self.auth_target = auth_target
        self.service = service
        self.timeout = timeout
        self._channel: Any = None

    def _stub(self) -> Any:
        if self._channel is None:
            self._channel = create_channel(
                self.auth_target,
                service=self.service,
                default_timeout=self.timeout,
                idempotent=AUTH_IDEMPOTENT,
                caller=_system_caller(),
            )
        return auth_pb2_grpc.AuthServiceStub(self._channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None


class JwksTokenVerifier(_AuthClient):
    """Local verification of access tokens against auth-service's JWKS (see module doc)."""

    def __init__(
        self,
        auth_target: str,
        *,
        service: str = "",
        timeout: float = JWKS_TIMEOUT_SECONDS,
        refetch_interval: float = REFETCH_INTERVAL_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(auth_target, service, timeout)
        self.refetch_interval = refetch_interval
        self.clock = clock
        self._verifier: AccessTokenVerifier | None = None
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> Caller:
        claims = await self.claims(token)
        return Caller(claims.subject, frozenset(claims.roles), token)

    async def claims(self, token: str) -> AccessClaims:
        """The verified claims of `token`, or an UNAUTHENTICATED DomainError."""
        verifier = self._verifier or await self._refresh(only_if_missing=True)
        kid = verifier.key_id(token)
        if kid not in verifier.kids:
            verifier = await self._refresh(only_if_missing=False)
        return verifier.verify(token, now=self.clock())

    async def _refresh(self, *, only_if_missing: bool) -> AccessTokenVerifier:
        """Fetch the JWKS unless one was fetched less than `refetch_interval` ago (so a
        stream of tokens with a bogus `kid` cannot turn into a stream of calls to auth)."""
        async with self._lock:
            recent = (
                self._fetched_at is not None
                and time.monotonic() - self._fetched_at < self.refetch_interval
            )
            if self._verifier is not None and (only_if_missing or recent):
                return self._verifier
            try:
                response = await self._stub().GetJwks(
                    auth_pb2.GetJwksRequest(), timeout=self.timeout
                )
            except grpc.aio.AioRpcError as exc:
                if self._verifier is not None:  # keep serving with the keys we have
                    return self._verifier
                raise _unavailable(exc) from None
            self._verifier = AccessTokenVerifier.from_jwks(jwks_from_response(response))
            self._fetched_at = time.monotonic()
            return self._verifier


@dataclass(frozen=True)
class ValidatedToken:
    """What auth's ValidateToken says about a live token."""

    user_id: str
    roles: frozenset[str]
    session_id: str
    email: str
    expires_at: datetime | None


class ValidatingTokenVerifier(_AuthClient):
    """Revocation-aware verification: every token is checked by auth's `ValidateToken`."""

    def __init__(
        self, auth_target: str, *, service: str = "", timeout: float = VALIDATE_TIMEOUT_SECONDS
    ) -> None:
        super().__init__(auth_target, service, timeout)

    async def verify(self, token: str) -> Caller:
        validated = await self.validate(token, with_email=False)
        return Caller(validated.user_id, validated.roles, token)

    async def validate(self, token: str, *, with_email: bool = True) -> ValidatedToken:
        """The full answer of ValidateToken, or the DomainError it gave. `with_email=False`
        spares auth the account read when the caller only needs who is calling (`email` is
        then empty)."""
        if not token:
            raise token_rejected("token_malformed")
        request = auth_pb2.ValidateTokenRequest(access_token=token, omit_email=not with_email)
        try:
            response = await self._stub().ValidateToken(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            error = domain_error_from_rpc(exc)
            if error.code in (ErrorCode.UNAUTHENTICATED, ErrorCode.UNAVAILABLE):
                raise error from None
            raise _unavailable(exc) from None
        expires_at = (
            response.expires_at.ToDatetime(tzinfo=UTC) if response.HasField("expires_at") else None
        )
        return ValidatedToken(
            user_id=response.user_id,
            roles=frozenset(response.roles),
            session_id=response.session_id,
            email=response.email,
            expires_at=expires_at,
        )


def _unavailable(exc: Any) -> DomainError:
    """auth could not answer: the caller cannot be authenticated right now (fail closed)."""
    return DomainError(
        f"cannot verify the access token: auth-service unavailable ({exc.code().name})",
        ErrorCode.UNAVAILABLE,
        "auth_unavailable",
    )
