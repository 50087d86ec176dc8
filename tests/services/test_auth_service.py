"""auth-service over a real gRPC server, on migrated SQLite + the in-process kv and on a
real PostgreSQL + Redis: registration, login with throttling, refresh rotation with reuse
detection, logout that ends the session at once, ValidateToken, the JWKS (verified with the
chassis JwksTokenVerifier), roles and the administrator bootstrap."""

from __future__ import annotations

import asyncio
import os
import secrets
import stat
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import jwt
import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from emporium.chassis.db import Database
from emporium.chassis.errors import DomainError, ErrorCode
from emporium.chassis.kv.factory import open_kv
from emporium.chassis.migrations import migrate
from emporium.chassis.rpc.client import create_channel, domain_error_from_rpc
from emporium.chassis.rpc.identity import Caller
from emporium.chassis.rpc.jwks import JwksTokenVerifier, ValidatingTokenVerifier
from emporium.chassis.rpc.server import create_server
from emporium.contracts.rpc.auth.v1 import auth_pb2, auth_pb2_grpc
from emporium.services.auth import store
from emporium.services.auth.domain import (
    ACCESS_TOKEN_TTL,
    CLOCK_SKEW_LEEWAY,
    Argon2Parameters,
    KeySet,
    PasswordHashing,
)
from emporium.services.auth.handlers import Auth
from emporium.services.auth.rpc import AuthServicer, LocalTokenVerifier
from tests.backends import backend_url

CHEAP = PasswordHashing(Argon2Parameters(time_cost=1, memory_cost_kib=1024, parallelism=1))
PASSWORD = "correct horse battery"


async def fresh_database_url(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated database: a SQLite file, or a new PostgreSQL database dropped after."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/auth.sqlite3"
        await migrate("auth", url)
        yield url
        return
    admin = make_url(backend_url("postgresql"))
    name = f"emporium_auth_{uuid.uuid4().hex}"
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        url = admin.set(database=name).render_as_string(hide_password=False)
        await migrate("auth", url)
        yield url
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


@dataclass
class AuthWorld:
    auth: Auth
    target: str
    stub: Any

    def as_caller(self, caller: Caller) -> Any:
        channel = create_channel(self.target, service="test", caller=caller)
        return auth_pb2_grpc.AuthServiceStub(channel)

    async def register(self, email: str = "", password: str = PASSWORD) -> Any:
        email = email or f"u-{uuid.uuid4().hex[:8]}@example.com"
        return await self.stub.Register(
            auth_pb2.RegisterRequest(email=email, password=password, name="Ada")
        )

    async def login(
        self, email: str, password: str = PASSWORD, client: str = "c1", timeout: float = 2.0
    ) -> Any:
        return await self.stub.Login(
            auth_pb2.LoginRequest(email=email, password=password, client_ip=client),
            timeout=timeout,
        )


async def rpc_error(call: Awaitable[Any]) -> DomainError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return domain_error_from_rpc(caught.value)


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite-memory", "postgresql-redis"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AuthWorld]:
    kind = request.param
    kv_url = "memory://" if kind == "sqlite" else backend_url("redis")
    urls = fresh_database_url(kind, tmp_path)
    url = await anext(urls)
    db = Database(url)
    kv = open_kv(kv_url, namespace=f"auth-test-{uuid.uuid4().hex[:10]}")
    keys = KeySet(store.signing_key_from({}, tmp_path))
    auth = Auth(db, kv, keys, hashing=CHEAP)
    server = create_server("auth", LocalTokenVerifier(auth))
    auth_pb2_grpc.add_AuthServiceServicer_to_server(AuthServicer(auth), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    target = f"127.0.0.1:{port}"
    channel = create_channel(target, service="test", caller=Caller.anonymous())
    try:
        yield AuthWorld(auth, target, auth_pb2_grpc.AuthServiceStub(channel))
    finally:
        await channel.close()
        await server.stop(None)
        await kv.close()
        await db.close()
        await urls.aclose()


# --- register -----------------------------------------------------------------------------


async def test_register_stores_a_canonical_email_and_refuses_it_twice(world: AuthWorld) -> None:
    email = f"Ada-{uuid.uuid4().hex[:6]}@Example.COM"
    created = await world.register(email)
    assert created.email == email.lower()
    assert list(created.roles) == ["user"]
    assert created.user_id

    err = await rpc_error(world.register(email.upper()))
    assert err.code is ErrorCode.ALREADY_EXISTS
    assert err.reason == "email_taken"


async def test_register_names_every_bad_field(world: AuthWorld) -> None:
    weak = await rpc_error(world.register(password="short"))
    assert weak.code is ErrorCode.INVALID_ARGUMENT
    assert {f.field for f in weak.fields} == {"password"}

    bad = await rpc_error(
        world.stub.Register(auth_pb2.RegisterRequest(email="nope", password=PASSWORD, name=" "))
    )
    assert {f.field for f in bad.fields} == {"email", "name"}


# --- login, tokens, JWKS ------------------------------------------------------------------


async def test_login_issues_tokens_that_validate_and_verify_with_the_jwks(
    world: AuthWorld,
) -> None:
    created = await world.register()
    pair = await world.login(created.email)
    assert pair.token_type == "bearer"
    assert pair.expires_in == 900
    assert pair.user_id == created.user_id

    info = await world.stub.ValidateToken(
        auth_pb2.ValidateTokenRequest(access_token=pair.access_token)
    )
    assert (info.user_id, list(info.roles), info.email) == (
        created.user_id,
        ["user"],
        created.email,
    )
    assert info.session_id

    jwks = JwksTokenVerifier(world.target, service="test")
    validating = ValidatingTokenVerifier(world.target, service="test")
    try:
        caller = await jwks.verify(pair.access_token)
        assert caller == Caller(created.user_id, frozenset({"user"}), pair.access_token)
        assert await validating.verify(pair.access_token) == caller
        assert (await validating.validate(pair.access_token)).email == created.email
        assert (await validating.validate(pair.access_token, with_email=False)).email == ""
    finally:
        await jwks.close()
        await validating.close()


async def test_a_validation_without_the_email_reads_no_database_but_still_sees_a_logout(
    world: AuthWorld,
) -> None:
    """The gateway asks with `omit_email` on every request: the answer names the same caller,
    auth sends no SQL for it, and the session store is still consulted (logout still wins)."""
    created = await world.register()
    pair = await world.login(created.email)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = world.auth.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        bare = await world.stub.ValidateToken(
            auth_pb2.ValidateTokenRequest(access_token=pair.access_token, omit_email=True)
        )
        assert statements == []
        full = await validate(world, pair.access_token)
        assert len(statements) == 1
        assert "credentials" in statements[0]
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert (bare.user_id, bare.session_id, list(bare.roles)) == (
        full.user_id,
        full.session_id,
        list(full.roles),
    )
    assert (bare.email, full.email) == ("", created.email)

    await logout(world, access=pair.access_token)
    dead = await rpc_error(
        world.stub.ValidateToken(
            auth_pb2.ValidateTokenRequest(access_token=pair.access_token, omit_email=True)
        )
    )
    assert (dead.code, dead.reason) == (ErrorCode.UNAUTHENTICATED, "session_revoked")


async def test_unknown_email_and_wrong_password_get_the_same_answer(world: AuthWorld) -> None:
    created = await world.register()
    wrong = await rpc_error(world.login(created.email, "wrong password!!"))
    unknown = await rpc_error(world.login("nobody@example.com"))
    assert wrong.code is unknown.code is ErrorCode.UNAUTHENTICATED
    assert (wrong.message, wrong.reason) == (unknown.message, unknown.reason)


async def test_failures_are_throttled_per_account_whatever_the_address(world: AuthWorld) -> None:
    created = await world.register()
    for attempt in range(4):
        await rpc_error(world.login(created.email, "wrong password!!", client=f"10.0.0.{attempt}"))
    assert (await world.login(created.email, client="c1")).access_token  # success clears
    for attempt in range(5):
        err = await rpc_error(world.login(created.email, "wrong password!!", f"10.1.0.{attempt}"))
        assert err.code is ErrorCode.UNAUTHENTICATED
    blocked = await rpc_error(world.login(created.email, client="192.0.2.99"))  # right password
    assert (blocked.code, blocked.reason) == (
        ErrorCode.RESOURCE_EXHAUSTED,
        "too_many_login_attempts",
    )
    assert blocked.retry_after is not None
    assert 1 <= blocked.retry_after <= 300
    other = await world.register()
    assert (await world.login(other.email, client="192.0.2.99")).access_token


def outcomes(results: list[Any]) -> dict[str, int]:
    """How many concurrent login attempts got each answer."""
    counts: dict[str, int] = {}
    for result in results:
        name = "ok"
        if isinstance(result, grpc.aio.AioRpcError):
            name = domain_error_from_rpc(result).reason
        counts[name] = counts.get(name, 0) + 1
    return counts


async def test_forty_concurrent_guesses_from_forty_addresses_check_five_passwords(
    world: AuthWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All at once, each from its own address: the throttle counts before it checks, so
    exactly five guesses reach the password check and 35 are refused (no check-then-act)."""
    created = await world.register()
    checked: list[str] = []
    verify = world.auth.hashing.verify

    def counting(stored: str, password: str) -> bool:
        checked.append(password)
        return verify(stored, password)

    monkeypatch.setattr(world.auth.hashing, "verify", counting)
    results = await asyncio.gather(
        *(
            world.login(created.email, f"guess {i:02d}", client=f"198.51.100.{i}", timeout=60)
            for i in range(40)
        ),
        return_exceptions=True,
    )
    assert outcomes(results) == {"invalid_credentials": 5, "too_many_login_attempts": 35}
    assert len(checked) == 5


async def test_one_address_guessing_many_accounts_is_throttled(world: AuthWorld) -> None:
    results = await asyncio.gather(
        *(
            world.login(f"victim-{i}@example.com", "spray password 1", "203.0.113.7", timeout=60)
            for i in range(25)
        ),
        return_exceptions=True,
    )
    assert outcomes(results) == {"invalid_credentials": 20, "too_many_login_attempts": 5}
    elsewhere = await world.register()
    assert (await world.login(elsewhere.email, client="203.0.113.8")).access_token


async def test_garbage_tokens_are_unauthenticated(world: AuthWorld) -> None:
    err = await rpc_error(
        world.stub.ValidateToken(auth_pb2.ValidateTokenRequest(access_token="not-a-jwt"))
    )
    assert (err.code, err.reason) == (ErrorCode.UNAUTHENTICATED, "token_malformed")
    bad_refresh = await rpc_error(world.stub.Refresh(auth_pb2.RefreshRequest(refresh_token="x")))
    assert (bad_refresh.code, bad_refresh.reason) == (
        ErrorCode.UNAUTHENTICATED,
        "refresh_token_invalid",
    )


# --- refresh, reuse, logout ---------------------------------------------------------------


async def refresh(world: AuthWorld, token: str) -> Any:
    return await world.stub.Refresh(auth_pb2.RefreshRequest(refresh_token=token))


async def validate(world: AuthWorld, token: str) -> Any:
    return await world.stub.ValidateToken(auth_pb2.ValidateTokenRequest(access_token=token))


async def test_refresh_rotates_and_a_reused_token_kills_the_family(world: AuthWorld) -> None:
    created = await world.register()
    first = await world.login(created.email)
    second = await refresh(world, first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert (await validate(world, second.access_token)).user_id == created.user_id

    reused = await rpc_error(refresh(world, first.refresh_token))
    assert (reused.code, reused.reason) == (ErrorCode.UNAUTHENTICATED, "refresh_token_reused")
    after = await rpc_error(refresh(world, second.refresh_token))
    assert after.reason == "session_revoked"
    dead = await rpc_error(validate(world, second.access_token))
    assert (dead.code, dead.reason) == (ErrorCode.UNAUTHENTICATED, "session_revoked")


async def test_two_concurrent_refreshes_cannot_both_win(world: AuthWorld) -> None:
    created = await world.register()
    pair = await world.login(created.email)
    results = await asyncio.gather(
        refresh(world, pair.refresh_token),
        refresh(world, pair.refresh_token),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) <= 1
    assert len(results) - len(winners) >= 1
    for winner in winners:  # the loser's reuse detection ended the session for both
        assert (await rpc_error(validate(world, winner.access_token))).reason == ("session_revoked")


async def test_logout_ends_the_access_and_refresh_token_at_once(world: AuthWorld) -> None:
    created = await world.register()
    pair = await world.login(created.email)
    other = await world.login(created.email)  # another device keeps its own session

    await world.stub.Logout(auth_pb2.LogoutRequest(access_token=pair.access_token))

    assert (await rpc_error(validate(world, pair.access_token))).reason == "session_revoked"
    assert (await rpc_error(refresh(world, pair.refresh_token))).reason == "session_revoked"
    assert (await validate(world, other.access_token)).user_id == created.user_id


def session_id_of(access_token: str) -> str:
    """The `sid` claim, as anyone holding the access token can read it (no key needed)."""
    return str(jwt.decode(access_token, options={"verify_signature": False})["sid"])


async def logout(world: AuthWorld, access: str = "", refresh_token: str = "") -> Any:
    request = auth_pb2.LogoutRequest(access_token=access, refresh_token=refresh_token)
    return await world.stub.Logout(request)


async def test_a_refresh_token_forged_from_the_access_token_ends_nothing(world: AuthWorld) -> None:
    """`<sid>.<anything>` names the session but proves nothing: Refresh and Logout refuse it
    as invalid, and the session, its access token and its real refresh token live on."""
    created = await world.register()
    pair = await world.login(created.email)
    forged = f"{session_id_of(pair.access_token)}.{secrets.token_urlsafe(32)}"

    for attempt in (refresh(world, forged), logout(world, refresh_token=forged)):
        err = await rpc_error(attempt)
        assert (err.code, err.reason) == (ErrorCode.UNAUTHENTICATED, "refresh_token_invalid")

    assert (await validate(world, pair.access_token)).user_id == created.user_id
    rotated = await refresh(world, pair.refresh_token)
    assert (await validate(world, rotated.access_token)).user_id == created.user_id


async def test_logout_with_the_refresh_token_alone_ends_the_session(world: AuthWorld) -> None:
    created = await world.register()
    pair = await world.login(created.email)
    other = await world.login(created.email)

    await logout(world, refresh_token=pair.refresh_token)
    await logout(world, refresh_token=pair.refresh_token)  # idempotent

    assert (await rpc_error(validate(world, pair.access_token))).reason == "session_revoked"
    assert (await rpc_error(refresh(world, pair.refresh_token))).reason == "session_revoked"
    assert (await validate(world, other.access_token)).user_id == created.user_id
    nothing = await rpc_error(logout(world))
    assert nothing.code is ErrorCode.UNAUTHENTICATED


async def test_an_expired_access_token_cannot_keep_a_session_alive(world: AuthWorld) -> None:
    """The access token has expired (so it cannot log out by itself); the refresh token
    ends the session anyway, even sent next to the expired access token."""
    created = await world.register()
    pair = await world.login(created.email)
    later = datetime.now(UTC) + ACCESS_TOKEN_TTL + CLOCK_SKEW_LEEWAY + timedelta(minutes=1)
    world.auth.clock = lambda: later

    expired = await rpc_error(logout(world, pair.access_token))
    assert (expired.code, expired.reason) == (ErrorCode.UNAUTHENTICATED, "token_expired")
    await logout(world, pair.access_token, pair.refresh_token)

    assert (await rpc_error(refresh(world, pair.refresh_token))).reason == "session_revoked"
    world.auth.clock = lambda: datetime.now(UTC)
    assert (await rpc_error(validate(world, pair.access_token))).reason == "session_revoked"


# --- roles and the administrator ----------------------------------------------------------


async def test_administrator_bootstrap_is_once_and_can_set_roles(world: AuthWorld) -> None:
    email = f"admin-{uuid.uuid4().hex[:6]}@emporium.local"
    assert await world.auth.ensure_admin(email, "admin-password-0123") is True
    assert await world.auth.ensure_admin(email, "another-password-0123") is False
    admin = await world.login(email, "admin-password-0123")
    assert set((await validate(world, admin.access_token)).roles) == {"admin", "user"}

    shopper = await world.register()
    signed_in = await world.login(shopper.email)
    as_user = world.as_caller(Caller(shopper.user_id, frozenset(), signed_in.access_token))
    denied = await rpc_error(
        as_user.SetRoles(auth_pb2.SetRolesRequest(user_id=shopper.user_id, roles=["admin"]))
    )
    assert denied.code is ErrorCode.PERMISSION_DENIED

    as_admin = world.as_caller(Caller(admin.user_id, frozenset(), admin.access_token))
    answer = await as_admin.SetRoles(
        auth_pb2.SetRolesRequest(user_id=shopper.user_id, roles=["admin"])
    )
    assert list(answer.roles) == ["admin", "user"]
    promoted = await world.login(shopper.email)
    assert "admin" in (await validate(world, promoted.access_token)).roles
    bad = await rpc_error(
        as_admin.SetRoles(auth_pb2.SetRolesRequest(user_id=shopper.user_id, roles=["root"]))
    )
    assert {f.field for f in bad.fields} == {"roles"}


async def test_a_forged_bearer_token_is_refused_before_the_handler(world: AuthWorld) -> None:
    forged = world.as_caller(Caller("someone", frozenset({"admin"}), "forged.token.value"))
    err = await rpc_error(forged.SetRoles(auth_pb2.SetRolesRequest(user_id="x", roles=["user"])))
    assert err.code is ErrorCode.UNAUTHENTICATED


async def test_identity_headers_without_a_token_are_refused(world: AuthWorld) -> None:
    """Claiming to be an admin in metadata, with no token and no service proof, is nothing."""
    claims = world.as_caller(Caller("someone", frozenset({"admin"})))
    err = await rpc_error(claims.SetRoles(auth_pb2.SetRolesRequest(user_id="x", roles=["user"])))
    assert err.code is ErrorCode.UNAUTHENTICATED


# --- signing key --------------------------------------------------------------------------


def test_local_signing_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    first = store.signing_key_from({}, tmp_path / "var")
    again = store.signing_key_from({}, tmp_path / "var")
    assert first.kid == again.kid
    path = tmp_path / "var" / store.LOCAL_KEY_FILENAME
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    configured = store.signing_key_from({store.SIGNING_KEY_FILE_VAR: str(path)}, tmp_path / "x")
    assert configured.kid == first.kid
    assert not (tmp_path / "x").exists()


def test_login_limits_come_from_emporium_variables_or_default() -> None:
    from emporium.chassis.config import ConfigError
    from emporium.services.auth.app import LIMIT_PER_ADDRESS_VAR, login_limit

    assert login_limit({}, LIMIT_PER_ADDRESS_VAR, 20) == 20
    assert login_limit({LIMIT_PER_ADDRESS_VAR: " 200 "}, LIMIT_PER_ADDRESS_VAR, 20) == 200
    for bad in ("0", "-3", "many"):
        with pytest.raises(ConfigError, match=LIMIT_PER_ADDRESS_VAR):
            login_limit({LIMIT_PER_ADDRESS_VAR: bad}, LIMIT_PER_ADDRESS_VAR, 20)
