"""gRPC entrypoint of search-service: translates requests and delegates to handlers.

RPCs without a method here are inherited from the generated servicer and answer
UNIMPLEMENTED, which is honest until their use case exists.
"""

from __future__ import annotations

from emporium.chassis.search.base import SearchIndex
from emporium.contracts.rpc.search.v1 import search_pb2, search_pb2_grpc

SERVICE_NAME: str = search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    """`SearchService` (search.proto)."""

    def __init__(self, index: SearchIndex) -> None:
        self.index = index
