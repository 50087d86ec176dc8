"""gRPC entrypoint of inventory-service: translates requests and delegates to handlers.

RPCs without a method here are inherited from the generated servicer and answer
UNIMPLEMENTED, which is honest until their use case exists.
"""

from __future__ import annotations

from emporium.chassis.db import Database
from emporium.chassis.kv.base import KeyValueStore
from emporium.contracts.rpc.inventory.v1 import inventory_pb2, inventory_pb2_grpc

SERVICE_NAME: str = inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"].full_name


class InventoryServicer(inventory_pb2_grpc.InventoryServiceServicer):
    """`InventoryService` (inventory.proto)."""

    def __init__(self, db: Database, kv: KeyValueStore) -> None:
        self.db = db
        self.kv = kv
