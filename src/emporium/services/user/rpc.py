"""gRPC entrypoint of user-service: translates requests and delegates to handlers.

RPCs without a method here are inherited from the generated servicer and answer
UNIMPLEMENTED, which is honest until their use case exists.
"""

from __future__ import annotations

from emporium.chassis.db import Database
from emporium.contracts.rpc.user.v1 import user_pb2, user_pb2_grpc

SERVICE_NAME: str = user_pb2.DESCRIPTOR.services_by_name["UserService"].full_name


class UserServicer(user_pb2_grpc.UserServiceServicer):
    """`UserService` (user.proto)."""

    def __init__(self, db: Database) -> None:
        self.db = db
