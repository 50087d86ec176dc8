"""Which services may call inventory-service's RPCs (`chassis.rpc.acl`: enforced by the server
interceptor; a method missing here is refused to everybody)."""

from __future__ import annotations

from emporium.chassis.rpc.acl import GATEWAY, CallerTable
from emporium.contracts.rpc.inventory.v1 import inventory_pb2

CALLERS = [
    CallerTable.of(
        inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"],
        {
            "SetStock": {GATEWAY},
            "GetStock": {GATEWAY},
            # the checkout saga's steps
            "ReserveStock": {"order"},
            "ReleaseStock": {"order"},
            "CommitStock": {"order"},
        },
    )
]
