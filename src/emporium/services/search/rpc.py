"""gRPC entrypoint of search-service: translates requests and delegates to handlers.

`Search` is public (the storefront's search box): no caller identity is required.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from emporium.contracts.rpc.search.v1 import search_pb2, search_pb2_grpc
from emporium.services.search import handlers
from emporium.services.search.store import ProductIndex

SERVICE_NAME: str = search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name

_SORTS = {
    search_pb2.SORT_ORDER_UNSPECIFIED: "relevance",
    search_pb2.SORT_ORDER_RELEVANCE: "relevance",
    search_pb2.SORT_ORDER_PRICE_ASC: "price_asc",
    search_pb2.SORT_ORDER_PRICE_DESC: "price_desc",
    search_pb2.SORT_ORDER_NEWEST: "newest",
}


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    """`SearchService` (search.proto)."""

    def __init__(self, products: ProductIndex) -> None:
        self.products = products

    async def Search(
        self, request: search_pb2.SearchRequest, context: Any
    ) -> search_pb2.SearchResponse:
        page = await handlers.search_products(self.products, search_params(request))
        return search_pb2.SearchResponse(
            items=[product_message(item) for item in page["items"]],
            total=page["total"],
            facets={
                name: search_pb2.FacetCounts(counts=counts)
                for name, counts in page["facets"].items()
            },
            next_cursor=page["next_cursor"] or "",
        )


def search_params(request: search_pb2.SearchRequest) -> dict[str, str | None]:
    """The request as the REST query parameters the domain validates (absent = None)."""
    return {
        "q": request.q,
        "category": request.category,
        "min_price": str(request.min_price) if request.HasField("min_price") else None,
        "max_price": str(request.max_price) if request.HasField("max_price") else None,
        # an enum value this server does not know is passed on as is and refused by name
        "sort": _SORTS.get(request.sort, str(request.sort)),
        "limit": str(request.limit) if request.limit else None,
        "cursor": request.cursor,
    }


def product_message(item: Mapping[str, Any]) -> search_pb2.Product:
    return search_pb2.Product(
        id=item["id"],
        sku=item.get("sku") or "",
        name=item.get("name") or "",
        description=item.get("description") or "",
        category=item.get("category") or "",
        price_minor=int(item.get("price_minor") or 0),
        currency=item.get("currency") or "",
        attributes={k: attribute_value(v) for k, v in (item.get("attributes") or {}).items()},
        image_urls=list(item.get("image_urls") or []),
        created_at=timestamp(item.get("created_at")),
        updated_at=timestamp(item.get("updated_at")),
    )


def attribute_value(value: Any) -> search_pb2.AttributeValue:
    if value is None:
        return search_pb2.AttributeValue(null_value=True)
    if isinstance(value, bool):
        return search_pb2.AttributeValue(bool_value=value)
    if isinstance(value, int):
        return search_pb2.AttributeValue(int_value=value)
    if isinstance(value, float):
        return search_pb2.AttributeValue(double_value=value)
    return search_pb2.AttributeValue(string_value=str(value))


def timestamp(rfc3339: Any) -> Timestamp | None:
    if not isinstance(rfc3339, str) or not rfc3339:
        return None
    stamp = Timestamp()
    stamp.FromJsonString(rfc3339)
    return stamp
