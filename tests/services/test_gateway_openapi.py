"""`GET /openapi.json` is an OpenAPI 3.1 document of every route in API.md, with summaries,
response models and problem+json error responses (400 for invalid input, not FastAPI's
default 422)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from emporium.services.api_gateway.app import close_api, create_api

# Every (method, path) of API.md, in its own spelling.
API_MD_ROUTES = [
    ("get", "/healthz"),
    ("get", "/api/v1/health"),
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/users/me"),
    ("patch", "/api/v1/users/me"),
    ("get", "/api/v1/users/me/addresses"),
    ("post", "/api/v1/users/me/addresses"),
    ("post", "/api/v1/products"),
    ("get", "/api/v1/products"),
    ("get", "/api/v1/products/{id}"),
    ("patch", "/api/v1/products/{id}"),
    ("delete", "/api/v1/products/{id}"),
    ("post", "/api/v1/products/{id}/images"),
    ("get", "/api/v1/search"),
    ("put", "/api/v1/inventory/{sku}"),
    ("get", "/api/v1/inventory/{sku}"),
    ("post", "/api/v1/orders"),
    ("get", "/api/v1/orders"),
    ("get", "/api/v1/orders/{id}"),
    ("post", "/api/v1/orders/{id}/cancel"),
    ("get", "/api/v1/notifications"),
    ("get", "/api/v1/recommendations"),
    ("get", "/api/v1/analytics/sales"),
    ("get", "/api/v1/analytics/top-products"),
    ("get", "/api/v1/analytics/low-stock"),
]


async def fetch_document() -> dict[str, Any]:
    api = create_api({})
    transport = httpx.ASGITransport(app=api)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            response = await client.get("/openapi.json")
    finally:
        await close_api(api)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """Fetched once over HTTP (a sync fixture: async ones are function-scoped here)."""
    return asyncio.run(fetch_document())


def test_is_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")


@pytest.mark.parametrize(("method", "path"), API_MD_ROUTES, ids=lambda v: str(v))
def test_every_api_md_route_is_documented(document: dict[str, Any], method: str, path: str) -> None:
    operation = document["paths"][path][method]
    assert operation["summary"]
    success = [s for s in operation["responses"] if s.startswith("2")]
    assert success, operation["responses"]


def test_errors_are_problem_json_and_invalid_input_is_400(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            for status, response in responses.items():
                if int(status) >= 400:
                    assert set(response["content"]) == {"application/problem+json"}
    assert "400" in document["paths"]["/api/v1/orders"]["post"]["responses"]
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_documented_statuses_match_the_contract(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert {"201", "202", "409"} <= paths["/api/v1/orders"]["post"]["responses"].keys()
    assert {"413", "415"} <= paths["/api/v1/products/{id}/images"]["post"]["responses"].keys()
    assert "204" in paths["/api/v1/auth/logout"]["post"]["responses"]
    assert "403" in paths["/api/v1/analytics/sales"]["get"]["responses"]
    order_params = {p["name"] for p in paths["/api/v1/orders"]["post"]["parameters"]}
    assert "Idempotency-Key" in order_params


def test_bearer_security_scheme_is_declared(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer"
    assert document["paths"]["/api/v1/users/me"]["get"]["security"]


def test_logout_documents_both_ways_to_end_a_session(document: dict[str, Any]) -> None:
    """A bearer token or none (`{}`: the refresh token in the optional body), 204 or 401."""
    operation = document["paths"]["/api/v1/auth/logout"]["post"]
    assert {"bearer": []} in operation["security"]
    assert {} in operation["security"]
    body = operation["requestBody"]
    assert body.get("required", False) is False
    schema = body["content"]["application/json"]["schema"]
    refs = [s.get("$ref", "") for s in schema.get("anyOf", [schema])]
    (ref,) = [r for r in refs if r]
    logout_body = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert logout_body["required"] == ["refresh_token"]
    assert logout_body["properties"]["refresh_token"]["minLength"] == 1
    assert {"204", "401"} <= operation["responses"].keys()
