"""user-service over a real gRPC server on migrated SQLite and PostgreSQL: profiles created
with `user.registered` in the outbox (idempotently), owner-or-admin checks, field errors,
the address book; and, with a real auth-service beside it, token validation through auth
(logout takes effect at once) and the lazily created profile of an account without one."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from emporium.chassis.db import Database
from emporium.chassis.errors import DomainError, ErrorCode
from emporium.chassis.kv.factory import open_kv
from emporium.chassis.migrations import migrate
from emporium.chassis.rpc.client import create_channel, domain_error_from_rpc
from emporium.chassis.rpc.identity import Caller
from emporium.chassis.rpc.jwks import ValidatingTokenVerifier
from emporium.chassis.rpc.server import create_server
from emporium.contracts.rpc.auth.v1 import auth_pb2, auth_pb2_grpc
from emporium.contracts.rpc.user.v1 import user_pb2, user_pb2_grpc
from emporium.services.auth import store as auth_store
from emporium.services.auth.domain import Argon2Parameters, KeySet, PasswordHashing
from emporium.services.auth.handlers import Auth
from emporium.services.auth.rpc import AuthServicer, LocalTokenVerifier
from emporium.services.user import store
from emporium.services.user.handlers import Users
from emporium.services.user.rpc import UserServicer
from tests.backends import backend_url

SYSTEM = Caller.system("api-gateway")
ADMIN = Caller("the-admin", frozenset({"admin", "user"}))
ADDRESS = {"line1": "1 Analytical St", "city": "London", "postal_code": "n1 9gu", "country": "gb"}


async def fresh_database_url(service: str, kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated database: a SQLite file, or a new PostgreSQL database dropped after."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/{service}.sqlite3"
        await migrate(service, url)
        yield url
        return
    admin = make_url(backend_url("postgresql"))
    name = f"emporium_{service}_{uuid.uuid4().hex}"
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        url = admin.set(database=name).render_as_string(hide_password=False)
        await migrate(service, url)
        yield url
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def rpc_error(call: Awaitable[Any]) -> DomainError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return domain_error_from_rpc(caught.value)


@dataclass
class UserWorld:
    db: Database
    target: str
    channels: list[Any]

    def stub(self, caller: Caller) -> Any:
        channel = create_channel(self.target, service="test", caller=caller)
        self.channels.append(channel)
        return user_pb2_grpc.UserServiceStub(channel)

    async def create(self, user_id: str = "", name: str = "Ada") -> Any:
        user_id = user_id or f"u-{uuid.uuid4().hex[:10]}"
        return await self.stub(SYSTEM).CreateUser(
            user_pb2.CreateUserRequest(user_id=user_id, email=f"{user_id}@example.com", name=name)
        )

    async def registered_events(self) -> list[dict[str, Any]]:
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(store.outbox.c.aggregateid, store.outbox.c.payload).where(
                        store.outbox.c.topic == "user.registered"
                    )
                )
            ).all()
        return [{"key": row[0], **json.loads(row[1])} for row in rows]


async def serve(servicer: Any, add: Any, verifier: Any = None) -> tuple[Any, str]:
    server = create_server("test", verifier)
    add(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UserWorld]:
    urls = fresh_database_url("user", request.param, tmp_path)
    db = Database(await anext(urls))
    server, target = await serve(
        UserServicer(Users(db)), user_pb2_grpc.add_UserServiceServicer_to_server
    )
    world = UserWorld(db, target, [])
    try:
        yield world
    finally:
        for channel in world.channels:
            await channel.close()
        await server.stop(None)
        await db.close()
        await urls.aclose()


# --- CreateUser ---------------------------------------------------------------------------


async def test_create_user_records_the_profile_and_one_event(world: UserWorld) -> None:
    user = await world.create("u-ada")
    assert (user.id, user.email, user.name, list(user.roles)) == (
        "u-ada",
        "u-ada@example.com",
        "Ada",
        ["user"],
    )
    again = await world.create("u-ada", name="Someone Else")  # a retry: same profile back
    assert again.name == "Ada"

    events = await world.registered_events()
    assert len(events) == 1
    assert events[0]["key"] == "u-ada"
    assert (events[0]["user_id"], events[0]["email"], events[0]["name"]) == (
        "u-ada",
        "u-ada@example.com",
        "Ada",
    )


async def test_create_user_is_for_the_system_or_the_account_itself(world: UserWorld) -> None:
    stranger = world.stub(Caller("u-mallory", frozenset({"user"})))
    err = await rpc_error(
        stranger.CreateUser(
            user_pb2.CreateUserRequest(user_id="u-victim", email="v@example.com", name="V")
        )
    )
    assert err.code is ErrorCode.PERMISSION_DENIED
    anonymous = world.stub(Caller.anonymous())
    err = await rpc_error(
        anonymous.CreateUser(user_pb2.CreateUserRequest(user_id="u-x", email="x@e.com", name="X"))
    )
    assert err.code is ErrorCode.UNAUTHENTICATED
    assert await world.registered_events() == []


async def test_create_user_names_bad_fields_and_writes_nothing(world: UserWorld) -> None:
    err = await rpc_error(world.create("u-blank", name="   "))
    assert (err.code, {f.field for f in err.fields}) == (ErrorCode.INVALID_ARGUMENT, {"name"})
    err = await rpc_error(
        world.stub(SYSTEM).CreateUser(user_pb2.CreateUserRequest(user_id="", email="", name="N"))
    )
    assert {f.field for f in err.fields} == {"user_id", "email"}
    assert await world.registered_events() == []


# --- profile ------------------------------------------------------------------------------


async def test_profile_is_visible_to_its_owner_and_admins_only(world: UserWorld) -> None:
    await world.create("u-ada")
    await world.create("u-bob")
    ada = world.stub(Caller("u-ada", frozenset({"user"})))
    me = await ada.GetProfile(user_pb2.GetProfileRequest())
    assert (me.id, list(me.roles)) == ("u-ada", ["user"])

    bob = world.stub(Caller("u-bob", frozenset({"user"})))
    hidden = await rpc_error(bob.GetProfile(user_pb2.GetProfileRequest(user_id="u-ada")))
    assert hidden.code is ErrorCode.NOT_FOUND
    seen = await world.stub(ADMIN).GetProfile(user_pb2.GetProfileRequest(user_id="u-ada"))
    assert seen.email == "u-ada@example.com"
    nobody = await rpc_error(
        world.stub(Caller.anonymous()).GetProfile(user_pb2.GetProfileRequest())
    )
    assert nobody.code is ErrorCode.UNAUTHENTICATED


async def test_update_profile_changes_the_name_and_validates_it(world: UserWorld) -> None:
    await world.create("u-ada")
    ada = world.stub(Caller("u-ada", frozenset({"user"})))
    updated = await ada.UpdateProfile(user_pb2.UpdateProfileRequest(name="  Ada L. "))
    assert updated.name == "Ada L."
    assert (await ada.GetProfile(user_pb2.GetProfileRequest())).name == "Ada L."
    unchanged = await ada.UpdateProfile(user_pb2.UpdateProfileRequest())
    assert unchanged.name == "Ada L."

    err = await rpc_error(ada.UpdateProfile(user_pb2.UpdateProfileRequest(name="x" * 101)))
    assert {f.field for f in err.fields} == {"name"}
    bob = world.stub(Caller("u-bob", frozenset({"user"})))
    other = await rpc_error(
        bob.UpdateProfile(user_pb2.UpdateProfileRequest(user_id="u-ada", name="Pwned"))
    )
    assert other.code is ErrorCode.NOT_FOUND


# --- addresses ----------------------------------------------------------------------------


async def test_address_book_belongs_to_its_owner(world: UserWorld) -> None:
    await world.create("u-ada")
    ada = world.stub(Caller("u-ada", frozenset({"user"})))
    added = await ada.AddAddress(user_pb2.AddAddressRequest(**ADDRESS, line2="Flat 2"))
    assert (added.user_id, added.postal_code, added.country, added.line2) == (
        "u-ada",
        "N1 9GU",
        "GB",
        "Flat 2",
    )
    await ada.AddAddress(user_pb2.AddAddressRequest(**{**ADDRESS, "city": "Paris"}))
    page = await ada.ListAddresses(user_pb2.ListAddressesRequest())
    assert [a.city for a in page.items] == ["London", "Paris"]
    assert page.next_cursor == ""
    first = await ada.ListAddresses(user_pb2.ListAddressesRequest(limit=1))
    rest = await ada.ListAddresses(user_pb2.ListAddressesRequest(limit=1, cursor=first.next_cursor))
    assert [a.city for a in [*first.items, *rest.items]] == ["London", "Paris"]

    bob = world.stub(Caller("u-bob", frozenset({"user"})))
    for call in (
        bob.ListAddresses(user_pb2.ListAddressesRequest(user_id="u-ada")),
        bob.AddAddress(user_pb2.AddAddressRequest(user_id="u-ada", **ADDRESS)),
    ):
        assert (await rpc_error(call)).code is ErrorCode.NOT_FOUND
    by_admin = await world.stub(ADMIN).ListAddresses(user_pb2.ListAddressesRequest(user_id="u-ada"))
    assert len(by_admin.items) == 2


async def test_bad_addresses_name_their_fields_and_are_not_stored(world: UserWorld) -> None:
    await world.create("u-ada")
    ada = world.stub(Caller("u-ada", frozenset({"user"})))
    err = await rpc_error(
        ada.AddAddress(
            user_pb2.AddAddressRequest(line1="", city="London", postal_code="N1", country="GBR")
        )
    )
    assert err.code is ErrorCode.INVALID_ARGUMENT
    assert {f.field for f in err.fields} == {"line1", "country"}
    bad_page = await rpc_error(ada.ListAddresses(user_pb2.ListAddressesRequest(limit=101)))
    assert {f.field for f in bad_page.fields} == {"limit"}
    assert list((await ada.ListAddresses(user_pb2.ListAddressesRequest())).items) == []


async def test_add_address_with_a_request_id_is_idempotent(world: UserWorld) -> None:
    await world.create("u-ada")
    ada = world.stub(Caller("u-ada", frozenset({"user"})))
    first = await ada.AddAddress(user_pb2.AddAddressRequest(**ADDRESS, request_id="r-1"))
    again = await ada.AddAddress(user_pb2.AddAddressRequest(**ADDRESS, request_id="r-1"))
    assert again.id == first.id
    assert len((await ada.ListAddresses(user_pb2.ListAddressesRequest())).items) == 1


# --- with a real auth-service: tokens validated by auth, lazy profile -----------------------


CHEAP = PasswordHashing(Argon2Parameters(time_cost=1, memory_cost_kib=1024, parallelism=1))


async def test_tokens_are_validated_by_auth_and_logout_is_immediate(tmp_path: Path) -> None:
    auth_urls = fresh_database_url("auth", "sqlite", tmp_path / "auth")
    user_urls = fresh_database_url("user", "sqlite", tmp_path / "user")
    auth_db, user_db = Database(await anext(auth_urls)), Database(await anext(user_urls))
    kv = open_kv("memory://", namespace="auth")
    auth = Auth(auth_db, kv, KeySet(auth_store.signing_key_from({}, tmp_path)), hashing=CHEAP)
    auth_server, auth_target = await serve(
        AuthServicer(auth),
        auth_pb2_grpc.add_AuthServiceServicer_to_server,
        LocalTokenVerifier(auth),
    )
    verifier = ValidatingTokenVerifier(auth_target, service="user")

    async def lookup_email(token: str) -> str:
        return (await verifier.validate(token)).email

    user_server, user_target = await serve(
        UserServicer(Users(user_db, lookup_email=lookup_email)),
        user_pb2_grpc.add_UserServiceServicer_to_server,
        verifier,
    )
    world = UserWorld(user_db, user_target, [])
    auth_channel = create_channel(auth_target, service="test", caller=Caller.anonymous())
    try:
        auth_stub = auth_pb2_grpc.AuthServiceStub(auth_channel)
        await auth.ensure_admin("admin@emporium.local", "admin-password-0123")
        pair = await auth_stub.Login(
            auth_pb2.LoginRequest(email="admin@emporium.local", password="admin-password-0123")
        )
        # the headers claim another user; the verified token wins
        me_stub = world.stub(Caller("someone-else", frozenset({"user"}), pair.access_token))
        me = await me_stub.GetProfile(user_pb2.GetProfileRequest())
        assert (me.id, me.email, me.name) == (pair.user_id, "admin@emporium.local", "admin")
        assert list(me.roles) == ["admin", "user"]
        assert [e["user_id"] for e in await world.registered_events()] == [pair.user_id]

        forged = world.stub(Caller(pair.user_id, frozenset({"admin"}), "forged-token"))
        forged_err = await rpc_error(forged.GetProfile(user_pb2.GetProfileRequest()))
        assert forged_err.code is ErrorCode.UNAUTHENTICATED

        await auth_stub.Logout(auth_pb2.LogoutRequest(access_token=pair.access_token))
        after = await rpc_error(me_stub.GetProfile(user_pb2.GetProfileRequest()))
        assert (after.code, after.reason) == (ErrorCode.UNAUTHENTICATED, "session_revoked")
    finally:
        for channel in [*world.channels, auth_channel]:
            await channel.close()
        await verifier.close()
        await user_server.stop(None)
        await auth_server.stop(None)
        await kv.close()
        await auth_db.close()
        await user_db.close()
        await auth_urls.aclose()
        await user_urls.aclose()
