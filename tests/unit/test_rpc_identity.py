"""Caller identity: metadata round trip, the trust rule and the authorization helpers."""

from __future__ import annotations

import pytest

from emporium.chassis.errors import DomainError, ErrorCode, unauthenticated
from emporium.chassis.rpc.identity import (
    Caller,
    acting_as,
    caller_from_metadata,
    caller_metadata,
    current_caller,
    require_admin,
    require_authenticated,
    require_owner_or_admin,
    require_service,
    resolve_caller,
)

ALICE = Caller("alice", frozenset({"customer"}), token="t-1")
ADMIN = Caller("root", frozenset({"admin"}))


def test_metadata_round_trip() -> None:
    assert caller_from_metadata(caller_metadata(ALICE)) == ALICE
    assert caller_metadata(Caller.anonymous()) == []
    assert caller_from_metadata([]) == Caller.anonymous()


def test_outside_any_call_the_caller_is_anonymous() -> None:
    assert not current_caller().is_authenticated
    with acting_as(ALICE):
        assert current_caller() is ALICE
    assert current_caller() == Caller.anonymous()


class Verifier:
    async def verify(self, token: str) -> Caller:
        if token != "t-1":
            raise unauthenticated("bad token")
        return Caller("alice-verified", frozenset({"customer"}), token)


async def test_trust_rule() -> None:
    forwarded = caller_metadata(ALICE)
    # no verifier: forwarded headers are trusted (until issue #3)
    assert await resolve_caller(forwarded, None) == ALICE
    # a verifier: the token decides who is calling
    assert (await resolve_caller(forwarded, Verifier())).user_id == "alice-verified"
    forged = [
        *caller_metadata(Caller("alice", frozenset({"admin"}))),
        ("authorization", "Bearer x"),
    ]
    with pytest.raises(DomainError) as caught:
        await resolve_caller(forged, Verifier())
    assert caught.value.code is ErrorCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("caller", "owner", "expected"),
    [
        (Caller.anonymous(), "alice", ErrorCode.UNAUTHENTICATED),
        (ALICE, "bob", ErrorCode.PERMISSION_DENIED),
        (ALICE, "alice", None),
        (ADMIN, "bob", None),
        (Caller.system("notification"), "bob", None),
    ],
    ids=["anonymous", "other-user", "owner", "admin", "system"],
)
def test_require_owner_or_admin(caller: Caller, owner: str, expected: ErrorCode | None) -> None:
    with acting_as(caller):
        if expected is None:
            assert require_owner_or_admin(owner) is caller
        else:
            with pytest.raises(DomainError) as caught:
                require_owner_or_admin(owner)
            assert caught.value.code is expected


def test_require_admin_and_authenticated() -> None:
    with acting_as(ALICE):
        assert require_authenticated() is ALICE
        with pytest.raises(DomainError) as caught:
            require_admin()
        assert caught.value.code is ErrorCode.PERMISSION_DENIED
    with acting_as(ADMIN):
        assert require_admin() is ADMIN
    with pytest.raises(DomainError) as caught:
        require_authenticated()
    assert caught.value.code is ErrorCode.UNAUTHENTICATED


async def test_a_claimed_system_identity_must_be_the_proven_calling_service() -> None:
    system = caller_metadata(Caller.system("order"))
    assert await resolve_caller(system, Verifier(), "order") == Caller.system("order")
    for calling in (None, "api_gateway"):
        with pytest.raises(DomainError) as caught:
            await resolve_caller(system, Verifier(), calling)
        assert caught.value.code is ErrorCode.UNAUTHENTICATED
    claims_user = caller_metadata(Caller("alice", frozenset({"admin"})))
    with pytest.raises(DomainError):  # a proven service still needs a token to act for alice
        await resolve_caller(claims_user, Verifier(), "api_gateway")
    assert await resolve_caller([], Verifier(), "api_gateway") == Caller.anonymous()


@pytest.mark.parametrize(
    ("caller", "allowed"),
    [
        (Caller.system("order"), True),
        (Caller.system("api_gateway"), False),
        (Caller.system("cdn"), False),
        (ADMIN, False),
        (Caller("service:order", frozenset({"admin"})), False),
        (Caller.anonymous(), False),
    ],
    ids=["order", "gateway", "cdn", "admin", "not-system", "anonymous"],
)
def test_require_service_accepts_only_the_named_services_own_identity(
    caller: Caller, allowed: bool
) -> None:
    with acting_as(caller):
        if allowed:
            assert require_service("order") is caller
        else:
            with pytest.raises(DomainError) as caught:
                require_service("order")
            assert caught.value.code in (ErrorCode.PERMISSION_DENIED, ErrorCode.UNAUTHENTICATED)
