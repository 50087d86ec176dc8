"""Models shared by several resources: the problem document, pages, the product, and the
`responses=` helper that documents error answers in the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from emporium.services.api_gateway.convert import JsonScalar

PROBLEM_MEDIA_TYPE = "application/problem+json"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class RequestModel(BaseModel):
    """Base of request bodies: unknown fields are an error naming the field, so a typo
    (`qty` for `quantity`) is a 400 instead of being silently ignored."""

    model_config = ConfigDict(extra="forbid")


class FieldProblem(BaseModel):
    field: str = Field(description="Dotted path of the invalid field or the header name")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str = ""
    errors: list[FieldProblem] | None = None


_DESCRIPTIONS = {
    400: "Invalid input (`errors` names each field)",
    401: "Missing or invalid bearer token",
    403: "Authenticated but not allowed (admin role required)",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    429: "Too many requests (see `Retry-After`)",
    503: "A backend is unavailable",
    504: "A backend did not answer in time",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the given error statuses (plus 400, 429, 503, 504, which any
    route may answer); `app.openapi` files them under problem+json."""
    wanted = sorted({400, 429, 503, 504, *statuses})
    return {
        status: {"model": Problem, "description": _DESCRIPTIONS.get(status, "Error")}
        for status in wanted
    }


Limit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"page size (default {DEFAULT_LIMIT})")
]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page")]


class Product(BaseModel):
    id: str
    sku: str
    name: str
    description: str
    category: str
    price_minor: int
    currency: str
    attributes: dict[str, JsonScalar]
    image_urls: list[str]
    created_at: str | None
    updated_at: str | None


class ProductPage(BaseModel):
    items: list[Product]
    next_cursor: str | None


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
OptionalText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
PostalCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]
CountryCode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z]{2}$"),
    Field(description="ISO 3166-1 alpha-2, e.g. `DE`"),
]


class AddressBody(RequestModel):
    """A postal address as clients send it (user addresses, order shipping address)."""

    line1: Text
    line2: OptionalText = ""
    city: Text
    postal_code: PostalCode
    country: CountryCode
