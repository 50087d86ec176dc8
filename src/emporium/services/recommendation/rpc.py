"""gRPC entrypoint of recommendation-service: translates requests and delegates to handlers.

RPCs without a method here are inherited from the generated servicer and answer
UNIMPLEMENTED, which is honest until their use case exists.
"""

from __future__ import annotations

from emporium.chassis.kv.base import KeyValueStore
from emporium.contracts.rpc.recommendation.v1 import recommendation_pb2, recommendation_pb2_grpc

SERVICE_NAME: str = recommendation_pb2.DESCRIPTOR.services_by_name[
    "RecommendationService"
].full_name


class RecommendationServicer(recommendation_pb2_grpc.RecommendationServiceServicer):
    """`RecommendationService` (recommendation.proto)."""

    def __init__(self, kv: KeyValueStore) -> None:
        self.kv = kv
