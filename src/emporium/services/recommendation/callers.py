"""Which services may call recommendation-service's RPCs (`chassis.rpc.acl`: enforced by the server
interceptor; a method missing here is refused to everybody)."""

from __future__ import annotations

from emporium.chassis.rpc.acl import GATEWAY, CallerTable
from emporium.contracts.rpc.recommendation.v1 import recommendation_pb2

CALLERS = [
    CallerTable.of(
        recommendation_pb2.DESCRIPTOR.services_by_name["RecommendationService"],
        {
            "GetRecommendations": {GATEWAY},
        },
    )
]
