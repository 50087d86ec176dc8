"""`GET /api/v1/recommendations`: for a product, personalised when signed in, best sellers
as a fallback (recommendation-service). Authentication is optional here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from emporium.chassis.rpc.identity import Caller, acting_as
from emporium.contracts.rpc.recommendation.v1 import recommendation_pb2
from emporium.services.api_gateway.schemas import MAX_LIMIT, problem_responses
from emporium.services.api_gateway.security import Gateway, OptionalUser

router = APIRouter(prefix="/api/v1/recommendations", tags=["engagement"])
DEFAULT_RECOMMENDATIONS = 10


class Recommendation(BaseModel):
    product_id: str
    score: float


class Recommendations(BaseModel):
    items: list[Recommendation]


@router.get(
    "",
    response_model=Recommendations,
    summary="Recommended products (never the product itself, never deleted ones)",
    responses=problem_responses(401),
    # Optional authentication: anonymous (no header) or a valid bearer token.
    openapi_extra={"security": [{}]},
)
async def recommendations(
    caller: OptionalUser,
    backends: Gateway,
    product_id: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_RECOMMENDATIONS,
) -> Recommendations:
    who = caller or Caller.anonymous()
    with acting_as(who):
        answer = await backends.recommendation.GetRecommendations(
            recommendation_pb2.GetRecommendationsRequest(
                product_id=product_id or "", user_id=who.user_id, limit=limit
            )
        )
    return Recommendations(
        items=[Recommendation(product_id=r.product_id, score=r.score) for r in answer.items]
    )
