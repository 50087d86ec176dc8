"""The chassis token verifiers: JwksTokenVerifier (local checks against a cached JWKS,
refetched on an unknown `kid` at most once per interval, failing closed when auth is down)
and ValidatingTokenVerifier (auth's answer, rejection reasons kept).

The auth side is a small AuthService servicer over a real gRPC server that publishes the
JWKS of a KeySet it controls and counts the fetches, so caching and rotation are observable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from emporium.chassis.auth_tokens import AccessClaims
from emporium.chassis.errors import DomainError, ErrorCode
from emporium.chassis.rpc.identity import Caller
from emporium.chassis.rpc.jwks import JwksTokenVerifier, ValidatingTokenVerifier
from emporium.chassis.rpc.server import create_server
from emporium.contracts.rpc.auth.v1 import auth_pb2, auth_pb2_grpc
from emporium.services.auth.domain import KeySet, generate_signing_key, token_rejected


def now() -> datetime:
    """Read per use, not at import: a suite running longer than a token's 15 minutes must
    not see the tokens these tests mint as expired."""
    return datetime.now(UTC)


@dataclass
class KeyServer(auth_pb2_grpc.AuthServiceServicer):
    keys: KeySet
    fetches: int = 0
    live_tokens: set[str] = field(default_factory=set)

    async def GetJwks(self, request: Any, context: Any) -> auth_pb2.GetJwksResponse:
        self.fetches += 1
        return auth_pb2.GetJwksResponse(
            keys=[auth_pb2.JsonWebKey(**jwk) for jwk in self.keys.jwks()["keys"]]
        )

    async def ValidateToken(self, request: Any, context: Any) -> auth_pb2.ValidateTokenResponse:
        if request.access_token not in self.live_tokens:
            raise token_rejected("session_revoked")
        claims = self.keys.verifier().verify(request.access_token, now=datetime.now(UTC))
        return auth_pb2.ValidateTokenResponse(
            user_id=claims.subject,
            roles=list(claims.roles),
            session_id=claims.session_id,
            email="ada@example.com",
        )

    def token(self, subject: str = "u-1", *, at: datetime | None = None) -> str:
        claims = AccessClaims.new(
            subject=subject, roles=["user"], session_id="s-1", now=at or now()
        )
        return self.keys.sign(claims)


@pytest.fixture
async def auth() -> AsyncIterator[tuple[KeyServer, str]]:
    servicer = KeyServer(KeySet(generate_signing_key()))
    server = create_server("auth")
    auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def test_a_valid_token_becomes_its_caller_and_the_jwks_is_cached(auth: Any) -> None:
    servicer, target = auth
    verifier = JwksTokenVerifier(target)
    try:
        token = servicer.token("u-ada")
        assert await verifier.verify(token) == Caller("u-ada", frozenset({"user"}), token)
        await verifier.verify(servicer.token("u-bob"))
        assert servicer.fetches == 1
    finally:
        await verifier.close()


async def test_an_unknown_kid_refetches_once_so_rotation_reaches_verifiers(auth: Any) -> None:
    servicer, target = auth
    verifier = JwksTokenVerifier(target, refetch_interval=0.0)
    try:
        await verifier.verify(servicer.token())
        servicer.keys = servicer.keys.rotate(generate_signing_key())
        assert (await verifier.verify(servicer.token("u-new"))).user_id == "u-new"
        assert servicer.fetches == 2
    finally:
        await verifier.close()


async def test_refetches_for_unknown_keys_are_rate_limited(auth: Any) -> None:
    servicer, target = auth
    verifier = JwksTokenVerifier(target, refetch_interval=3600.0)
    stranger = KeySet(generate_signing_key())
    try:
        await verifier.verify(servicer.token())
        for _ in range(3):
            with pytest.raises(DomainError) as caught:
                await verifier.verify(
                    stranger.sign(
                        AccessClaims.new(subject="x", roles=[], session_id="s", now=now())
                    )
                )
            assert caught.value.reason == "token_key_unknown"
        assert servicer.fetches == 1
    finally:
        await verifier.close()


async def test_expired_and_garbage_tokens_are_unauthenticated(auth: Any) -> None:
    servicer, target = auth
    later = JwksTokenVerifier(target, clock=lambda: now() + timedelta(hours=1))
    try:
        with pytest.raises(DomainError) as caught:
            await later.verify(servicer.token())
        assert (caught.value.code, caught.value.reason) == (
            ErrorCode.UNAUTHENTICATED,
            "token_expired",
        )
        with pytest.raises(DomainError) as garbage:
            await later.verify("garbage")
        assert garbage.value.reason == "token_malformed"
    finally:
        await later.close()


async def test_auth_unreachable_fails_closed() -> None:
    for verifier in (
        JwksTokenVerifier("127.0.0.1:1", timeout=0.5),
        ValidatingTokenVerifier("127.0.0.1:1", timeout=0.5),
    ):
        try:
            with pytest.raises(DomainError) as caught:
                await verifier.verify("a.b.c")
            assert caught.value.code is ErrorCode.UNAVAILABLE
        finally:
            await verifier.close()


async def test_validating_verifier_asks_auth_every_time(auth: Any) -> None:
    servicer, target = auth
    verifier = ValidatingTokenVerifier(target)
    try:
        token = servicer.token("u-ada")
        servicer.live_tokens.add(token)
        assert await verifier.verify(token) == Caller("u-ada", frozenset({"user"}), token)
        assert (await verifier.validate(token)).email == "ada@example.com"
        servicer.live_tokens.clear()  # logged out
        with pytest.raises(DomainError) as caught:
            await verifier.verify(token)
        assert (caught.value.code, caught.value.reason) == (
            ErrorCode.UNAUTHENTICATED,
            "session_revoked",
        )
    finally:
        await verifier.close()
