"""`GET /api/v1/search`: typo-tolerant product search (search-service)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from emporium.chassis.errors import FieldError, invalid
from emporium.contracts.rpc.search.v1 import search_pb2
from emporium.services.api_gateway.constraints import MAX_SAFE_INTEGER
from emporium.services.api_gateway.convert import next_cursor, product_to_json
from emporium.services.api_gateway.schemas import (
    CURSOR_RULE,
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    Product,
    problem_responses,
    semantic_fields,
)
from emporium.services.api_gateway.security import Gateway

router = APIRouter(prefix="/api/v1/search", tags=["catalog"])
MAX_QUERY_LENGTH = 200  # search-service's


class Sort(StrEnum):
    relevance = "relevance"
    price_asc = "price_asc"
    price_desc = "price_desc"
    newest = "newest"


SORT_TO_PROTO = {
    Sort.relevance: search_pb2.SORT_ORDER_RELEVANCE,
    Sort.price_asc: search_pb2.SORT_ORDER_PRICE_ASC,
    Sort.price_desc: search_pb2.SORT_ORDER_PRICE_DESC,
    Sort.newest: search_pb2.SORT_ORDER_NEWEST,
}
Price = Annotated[
    int | None, Query(ge=0, le=MAX_SAFE_INTEGER, description="minor units, inclusive")
]


class SearchResults(BaseModel):
    items: list[Product]
    total: int
    facets: dict[str, dict[str, int]]
    next_cursor: str | None


@router.get(
    "",
    response_model=SearchResults,
    summary="Full-text product search with filters, a category facet and paging",
    responses=problem_responses(),
    openapi_extra=semantic_fields(
        {
            "min_price": "must not be above max_price",
            "max_price": "must not be below min_price",
            "cursor": CURSOR_RULE,
        }
    ),
)
async def search(
    backends: Gateway,
    q: Annotated[str, Query(max_length=MAX_QUERY_LENGTH)] = "",
    category: str | None = None,
    min_price: Price = None,
    max_price: Price = None,
    sort: Sort = Sort.relevance,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict[str, Any]:
    if min_price is not None and max_price is not None and min_price > max_price:
        raise invalid(
            "min_price is above max_price", FieldError("min_price", "must be <= max_price")
        )
    request = search_pb2.SearchRequest(
        q=q, category=category or "", sort=SORT_TO_PROTO[sort], limit=limit, cursor=cursor or ""
    )
    if min_price is not None:
        request.min_price = min_price
    if max_price is not None:
        request.max_price = max_price
    answer = await backends.search.Search(request)
    facets = {name: dict(counts.counts) for name, counts in answer.facets.items()}
    facets.setdefault("category", {})
    return {
        "items": [product_to_json(p) for p in answer.items],
        "total": answer.total,
        "facets": facets,
        "next_cursor": next_cursor(answer.next_cursor),
    }
