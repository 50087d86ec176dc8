"""gRPC entrypoint of auth-service: translates requests and delegates to handlers.

RPCs without a method here are inherited from the generated servicer and answer
UNIMPLEMENTED, which is honest until their use case exists.
"""

from __future__ import annotations

from emporium.chassis.db import Database
from emporium.chassis.kv.base import KeyValueStore
from emporium.contracts.rpc.auth.v1 import auth_pb2, auth_pb2_grpc

SERVICE_NAME: str = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    """`AuthService` (auth.proto)."""

    def __init__(self, db: Database, kv: KeyValueStore) -> None:
        self.db = db
        self.kv = kv
