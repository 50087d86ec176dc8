"""Which services may call cdn-service's RPCs (`chassis.rpc.acl`: enforced by the server
interceptor; a method missing here is refused to everybody)."""

from __future__ import annotations

from emporium.chassis.rpc.acl import GATEWAY, CallerTable
from emporium.contracts.rpc.cdn.v1 import cdn_pb2

CALLERS = [
    CallerTable.of(
        cdn_pb2.DESCRIPTOR.services_by_name["CdnService"],
        {
            "UploadImage": {GATEWAY},
            "GetImageMeta": {GATEWAY},
        },
    )
]
