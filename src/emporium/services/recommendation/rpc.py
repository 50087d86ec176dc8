"""gRPC entrypoint of recommendation-service: translates requests and delegates to handlers.

`GetRecommendations` is public: anonymous callers get "bought together / similar" and best
sellers; a signed-in caller's own purchases personalise it.
"""

from __future__ import annotations

from typing import Any

from emporium.chassis.rpc.identity import current_caller
from emporium.contracts.rpc.recommendation.v1 import recommendation_pb2, recommendation_pb2_grpc
from emporium.services.recommendation import handlers
from emporium.services.recommendation.store import FeatureStore

SERVICE_NAME: str = recommendation_pb2.DESCRIPTOR.services_by_name[
    "RecommendationService"
].full_name


class RecommendationServicer(recommendation_pb2_grpc.RecommendationServiceServicer):
    """`RecommendationService` (recommendation.proto)."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store

    async def GetRecommendations(
        self, request: recommendation_pb2.GetRecommendationsRequest, context: Any
    ) -> recommendation_pb2.GetRecommendationsResponse:
        answer = await handlers.recommend(
            self.store,
            current_caller(),
            request.product_id,
            request.user_id,
            str(request.limit) if request.limit else None,
        )
        return recommendation_pb2.GetRecommendationsResponse(
            items=[
                recommendation_pb2.Recommendation(product_id=i["product_id"], score=i["score"])
                for i in answer["items"]
            ]
        )
