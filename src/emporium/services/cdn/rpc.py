"""gRPC entrypoint of cdn-service: translates requests and delegates to handlers.

RPCs without a method here are inherited from the generated servicer and answer
UNIMPLEMENTED, which is honest until their use case exists.
"""

from __future__ import annotations

from emporium.chassis.blob.base import BlobStore
from emporium.contracts.rpc.cdn.v1 import cdn_pb2, cdn_pb2_grpc

SERVICE_NAME: str = cdn_pb2.DESCRIPTOR.services_by_name["CdnService"].full_name


class CdnServicer(cdn_pb2_grpc.CdnServiceServicer):
    """`CdnService` (cdn.proto)."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
