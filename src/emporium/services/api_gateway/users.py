"""`/api/v1/users/me` and its addresses (user-service), always for the signed-in caller."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header
from pydantic import BaseModel

from emporium.chassis.rpc.identity import acting_as
from emporium.contracts.rpc.user.v1 import user_pb2
from emporium.services.api_gateway.constraints import IDEMPOTENCY_KEY_PATTERN, user_text
from emporium.services.api_gateway.convert import next_cursor, rfc3339
from emporium.services.api_gateway.schemas import (
    CURSOR_RULE,
    DEFAULT_LIMIT,
    AddressBody,
    Cursor,
    Limit,
    RequestModel,
    problem_responses,
    semantic_fields,
)
from emporium.services.api_gateway.security import Gateway, User

router = APIRouter(prefix="/api/v1/users/me", tags=["identity"])


class Profile(BaseModel):
    id: str
    email: str
    name: str
    roles: list[str]


# user-service's MAX_ID_LENGTH bounds the request id an address retry carries.
MAX_ADDRESS_KEY_LENGTH = 64


ProfileName = Annotated[str, user_text(100)]  # user-service validate_name


class ProfilePatch(RequestModel):
    name: ProfileName | None = None


class Address(BaseModel):
    id: str
    line1: str
    line2: str
    city: str
    postal_code: str
    country: str
    created_at: str | None


class AddressPage(BaseModel):
    items: list[Address]
    next_cursor: str | None


def _profile(user: user_pb2.User, fallback_roles: frozenset[str]) -> Profile:
    roles = list(user.roles) or sorted(fallback_roles)
    return Profile(id=user.id, email=user.email, name=user.name, roles=roles)


def _address(a: user_pb2.Address) -> dict[str, Any]:
    return {
        "id": a.id,
        "line1": a.line1,
        "line2": a.line2,
        "city": a.city,
        "postal_code": a.postal_code,
        "country": a.country,
        "created_at": rfc3339(a.created_at),
    }


@router.get(
    "",
    response_model=Profile,
    summary="The caller's profile",
    responses=problem_responses(401, 404),
)
async def get_me(caller: User, backends: Gateway) -> Profile:
    with acting_as(caller):
        user = await backends.user.GetProfile(user_pb2.GetProfileRequest(user_id=caller.user_id))
    return _profile(user, caller.roles)


@router.patch(
    "",
    response_model=Profile,
    summary="Change the caller's profile (only the fields sent change)",
    responses=problem_responses(401, 404, 413),
)
async def patch_me(body: ProfilePatch, caller: User, backends: Gateway) -> Profile:
    request = user_pb2.UpdateProfileRequest(user_id=caller.user_id)
    if body.name is not None:
        request.name = body.name
    with acting_as(caller):
        user = await backends.user.UpdateProfile(request)
    return _profile(user, caller.roles)


@router.get(
    "/addresses",
    response_model=AddressPage,
    summary="The caller's addresses",
    responses=problem_responses(401),
    openapi_extra=semantic_fields({"cursor": CURSOR_RULE}),
)
async def list_addresses(
    caller: User, backends: Gateway, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> dict[str, Any]:
    with acting_as(caller):
        page = await backends.user.ListAddresses(
            user_pb2.ListAddressesRequest(user_id=caller.user_id, limit=limit, cursor=cursor or "")
        )
    return {
        "items": [_address(a) for a in page.items],
        "next_cursor": next_cursor(page.next_cursor),
    }


@router.post(
    "/addresses",
    status_code=201,
    response_model=Address,
    summary="Add an address (send `Idempotency-Key` to make a retry safe)",
    responses=problem_responses(401, 413, described={409: "The address book is full (20)"}),
)
async def add_address(
    body: AddressBody,
    caller: User,
    backends: Gateway,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=MAX_ADDRESS_KEY_LENGTH,
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="Optional: a retry with the same key returns the first address",
        ),
    ] = None,
) -> dict[str, Any]:
    request = user_pb2.AddAddressRequest(
        user_id=caller.user_id,
        line1=body.line1,
        line2=body.line2,
        city=body.city,
        postal_code=body.postal_code,
        country=body.country,
        request_id=idempotency_key or "",
    )
    with acting_as(caller):
        address = await backends.user.AddAddress(request)
    return _address(address)
