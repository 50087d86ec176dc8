"""gRPC entrypoint of user-service: translates requests and delegates to handlers.

An empty `user_id` in a request means "the caller" (GET /users/me); authorization is in the
handlers (owner or admin, see handlers.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from emporium.contracts.rpc.user.v1 import user_pb2, user_pb2_grpc
from emporium.services.user.handlers import AddressInput, ProfileView, Users
from emporium.services.user.store import StoredAddress

SERVICE_NAME: str = user_pb2.DESCRIPTOR.services_by_name["UserService"].full_name


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _user(view: ProfileView) -> user_pb2.User:
    profile = view.stored.profile
    return user_pb2.User(
        id=profile.id,
        email=profile.email,
        name=profile.name,
        roles=list(view.roles),
        created_at=_timestamp(view.stored.created_at),
        updated_at=_timestamp(view.stored.updated_at),
    )


def _address(stored: StoredAddress) -> user_pb2.Address:
    address = stored.address
    return user_pb2.Address(
        id=address.id,
        user_id=stored.user_id,
        line1=address.line1,
        line2=address.line2 or "",
        city=address.city,
        postal_code=address.postal_code,
        country=address.country,
        created_at=_timestamp(stored.created_at),
    )


class UserServicer(user_pb2_grpc.UserServiceServicer):
    """`UserService` (user.proto)."""

    def __init__(self, users: Users) -> None:
        self.users = users

    async def CreateUser(self, request: Any, context: Any) -> user_pb2.User:
        view = await self.users.create_user(request.user_id, request.email, request.name)
        return _user(view)

    async def GetProfile(self, request: Any, context: Any) -> user_pb2.User:
        return _user(await self.users.get_profile(request.user_id))

    async def UpdateProfile(self, request: Any, context: Any) -> user_pb2.User:
        name = request.name if request.HasField("name") else None
        return _user(await self.users.update_profile(request.user_id, name))

    async def ListAddresses(self, request: Any, context: Any) -> user_pb2.ListAddressesResponse:
        page = await self.users.list_addresses(request.user_id, request.limit, request.cursor)
        return user_pb2.ListAddressesResponse(
            items=[_address(a) for a in page.items], next_cursor=page.next_cursor
        )

    async def AddAddress(self, request: Any, context: Any) -> user_pb2.Address:
        fields = AddressInput(
            line1=request.line1,
            line2=request.line2 or None,
            city=request.city,
            postal_code=request.postal_code,
            country=request.country,
        )
        return _address(await self.users.add_address(request.user_id, fields, request.request_id))

    async def DeleteAddress(self, request: Any, context: Any) -> user_pb2.DeleteAddressResponse:
        await self.users.delete_address(request.user_id, request.address_id)
        return user_pb2.DeleteAddressResponse()
