"""Models shared by several resources: the problem document, pages, the product, and the
`responses=` helper that documents error answers in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from emporium.services.api_gateway.constraints import (
    CURSOR_PATTERN,
    MAX_CURSOR_LENGTH,
    user_text,
)
from emporium.services.api_gateway.convert import JsonScalar

PROBLEM_MEDIA_TYPE = "application/problem+json"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# Operation extension: fields whose well-formed values the backend still checks against its
# state or against other fields (a 400 naming the field), which no JSON Schema can say.
SEMANTIC_FIELDS = "x-emporium-semantic-fields"


class RequestModel(BaseModel):
    """Base of request bodies: unknown fields are an error naming the field, so a typo
    (`qty` for `quantity`) is a 400 instead of being silently ignored. Integer fields end in
    `constraints.JSON_INTEGER`, so their types are JSON Schema's."""

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
    reason: str | None = Field(
        default=None, description="Machine-readable cause (`out_of_stock`, `email_taken`...)"
    )


_DESCRIPTIONS = {
    400: "Invalid input (`errors` names each field)",
    401: "Missing or invalid bearer token",
    403: "Authenticated but not allowed (admin role required)",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large (request bodies are limited to 10 MiB plus envelope)",
    415: "Unsupported media type",
    429: "Too many requests (see `Retry-After`)",
    503: "A backend is unavailable",
    504: "A backend did not answer in time",
}


def problem_responses(
    *statuses: int, described: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the given error statuses (plus 400, 429, 503, 504, which any
    route may answer, and those of `described`, with their own description); `app.openapi`
    files them under problem+json."""
    texts = {**_DESCRIPTIONS, **(described or {})}
    wanted = sorted({400, 429, 503, 504, *statuses, *(described or {})})
    return {
        status: {"model": Problem, "description": texts.get(status, "Error")} for status in wanted
    }


def semantic_fields(fields: dict[str, str]) -> dict[str, Any]:
    """`openapi_extra` declaring `field -> rule` of `SEMANTIC_FIELDS` (`*` = any index)."""
    return {SEMANTIC_FIELDS: fields}


def link(
    method: str, path: str, parameters: dict[str, str] | None = None, body: Any = None
) -> dict[str, Any]:
    """An OpenAPI link to the operation `method path`: which values of this response feed
    it (runtime expressions such as `$response.body#/id`). Clients and stateful testers
    (schemathesis) follow them from one call to the next."""
    pointer = path.replace("~", "~0").replace("/", "~1")
    out: dict[str, Any] = {"operationRef": f"#/paths/{pointer}/{method}"}
    if parameters:
        out["parameters"] = parameters
    if body is not None:
        out["requestBody"] = body
        # OpenAPI's `requestBody` is the whole body; schemathesis would merge it into a
        # generated one (extra random order lines) unless told so.
        out["x-schemathesis"] = {"merge_body": False}
    return out


CURSOR_RULE = "must be the `next_cursor` this list returned for the same query"
Limit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"page size (default {DEFAULT_LIMIT})")
]
Cursor = Annotated[
    str | None,
    Query(
        pattern=CURSOR_PATTERN,
        max_length=MAX_CURSOR_LENGTH,
        description="`next_cursor` of the previous page (opaque; another value is a 400)",
    ),
]


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


# user-service's address rules (user/domain.py), which also satisfy order-service's.
AddressLine = Annotated[str, user_text(200)]
OptionalAddressLine = Annotated[str, user_text(200, required=False)]
City = Annotated[str, user_text(100)]
PostalCode = Annotated[
    str,
    StringConstraints(max_length=16, pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9 -]*[A-Za-z0-9])?$"),
    Field(description="letters, digits, spaces and dashes, e.g. `N1 9GU`"),
]
CountryCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z]{2}$", to_upper=True),
    Field(description="ISO 3166-1 alpha-2, e.g. `DE`"),
]


class AddressBody(RequestModel):
    """A postal address as clients send it (user addresses, order shipping address)."""

    line1: AddressLine
    line2: OptionalAddressLine = ""
    city: City
    postal_code: PostalCode
    country: CountryCode
