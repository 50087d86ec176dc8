"""Which services may call user-service's RPCs (`chassis.rpc.acl`: enforced by the server
interceptor; a method missing here is refused to everybody)."""

from __future__ import annotations

from emporium.chassis.rpc.acl import GATEWAY, CallerTable
from emporium.contracts.rpc.user.v1 import user_pb2

CALLERS = [
    CallerTable.of(
        user_pb2.DESCRIPTOR.services_by_name["UserService"],
        {
            "CreateUser": {GATEWAY},
            "GetProfile": {GATEWAY},
            "UpdateProfile": {GATEWAY},
            "ListAddresses": {GATEWAY},
            "AddAddress": {GATEWAY},
            "DeleteAddress": {GATEWAY},
        },
    )
]
