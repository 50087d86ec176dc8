"""Which services may call search-service's RPCs (`chassis.rpc.acl`: enforced by the server
interceptor; a method missing here is refused to everybody)."""

from __future__ import annotations

from emporium.chassis.rpc.acl import GATEWAY, CallerTable
from emporium.contracts.rpc.search.v1 import search_pb2

CALLERS = [
    CallerTable.of(
        search_pb2.DESCRIPTOR.services_by_name["SearchService"],
        {
            "Search": {GATEWAY},
        },
    )
]
