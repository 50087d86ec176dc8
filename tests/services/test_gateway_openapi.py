"""`GET /openapi.json` is an OpenAPI 3.1 document of every route in API.md, with summaries,
response models and problem+json error responses (400 for invalid input, not FastAPI's
default 422)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest

from emporium.services.api_gateway.app import close_api, create_api
from emporium.services.api_gateway.schemas import SEMANTIC_FIELDS

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


# Their 503 is their usual body (which services are down), not a problem.
HEALTH_PATHS = {"/healthz", "/api/v1/health"}


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
                if int(status) >= 400 and path not in HEALTH_PATHS:
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


# -- what the schemathesis run checks (tests/e2e/test_schemathesis.py) ------------------------


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_idempotency_key_is_a_required_header_of_checkout(document: dict[str, Any]) -> None:
    """It was documented optional, so a request without it (a 400) looked valid."""
    (header,) = document["paths"]["/api/v1/orders"]["post"]["parameters"]
    assert (header["name"], header["in"], header["required"]) == ("Idempotency-Key", "header", True)
    assert header["schema"]["pattern"]
    assert header["schema"]["maxLength"] == 255


def test_recommendations_document_their_optional_authentication(document: dict[str, Any]) -> None:
    security = document["paths"]["/api/v1/recommendations"]["get"]["security"]
    assert {} in security
    assert {"bearer": []} in security


def test_healthz_documents_what_the_runtime_answers(document: dict[str, Any]) -> None:
    """The runtime serves /healthz in every process (`{status, service, checks}`), not the
    gateway's route that was documented as a map of strings."""
    responses = document["paths"]["/healthz"]["get"]["responses"]
    ref = responses["200"]["content"]["application/json"]["schema"]["$ref"]
    model = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert set(model["properties"]) == {"status", "service", "checks"}
    assert "503" in responses


def resolve(document: dict[str, Any], ref: str) -> tuple[str, str]:
    """`#/paths/~1api~1v1~1orders/post` -> (`/api/v1/orders`, `post`)."""
    _, _, pointer, method = ref.split("/")
    path = pointer.replace("~1", "/").replace("~0", "~")
    assert method in document["paths"][path], ref
    return path, method


def test_every_link_targets_an_operation_and_its_parameters(document: dict[str, Any]) -> None:
    links = 0
    for _, _, operation in operations(document):
        for response in operation["responses"].values():
            for name, link in response.get("links", {}).items():
                links += 1
                path, method = resolve(document, link["operationRef"])
                target = document["paths"][path][method]
                names = {p["name"] for p in target.get("parameters", [])}
                assert set(link.get("parameters", {})) <= names, name
                assert "requestBody" not in link or "requestBody" in target, name
    assert links >= 20


def test_checkout_is_reachable_by_links(document: dict[str, Any]) -> None:
    """Stateful testers reach orders: listing products leads to POST /orders, an order to
    GET and cancel."""
    listed = document["paths"]["/api/v1/products"]["get"]["responses"]["200"]["links"]
    assert resolve(document, listed["Order"]["operationRef"]) == ("/api/v1/orders", "post")
    placed = document["paths"]["/api/v1/orders"]["post"]["responses"]
    for status in ("201", "202"):
        targets = {
            resolve(document, link["operationRef"]) for link in placed[status]["links"].values()
        }
        assert targets == {("/api/v1/orders/{id}", "get"), ("/api/v1/orders/{id}/cancel", "post")}


def body_fields(document: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> set[str]:
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    names: set[str] = set()
    for name, sub in schema.get("properties", {}).items():
        names.add(prefix + name)
        if sub.get("type") == "array":
            names |= body_fields(document, sub["items"], f"{prefix}{name}.*.")
        else:
            names |= body_fields(document, sub, f"{prefix}{name}.")
    return names


def test_semantic_fields_name_parameters_or_body_fields(document: dict[str, Any]) -> None:
    declared = 0
    for method, path, operation in operations(document):
        fields = operation.get(SEMANTIC_FIELDS, {})
        known = {p["name"] for p in operation.get("parameters", [])}
        for content in operation.get("requestBody", {}).get("content", {}).values():
            known |= body_fields(document, content["schema"])
        assert set(fields) <= known, (method, path, set(fields) - known)
        declared += len(fields)
    assert declared >= 10


def test_integer_bounds_are_integers(document: dict[str, Any]) -> None:
    """FastAPI wrote `maximum: 1000000000000.0`; large bounds lost their exact value."""
    text = json.dumps(document)
    for key in ("minimum", "maximum"):
        assert not re.search(rf'"{key}": -?\d+\.\d', text), key


def test_response_headers_are_documented(document: dict[str, Any]) -> None:
    """X-Request-Id on every answer, WWW-Authenticate on 401, Retry-After on 429: the
    schemathesis run checks each documented header is there."""
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            headers = response["headers"]
            assert headers["X-Request-Id"]["required"], (method, path, status)
            if status == "401":
                assert "WWW-Authenticate" in headers, (method, path)
            if status == "429":
                assert "Retry-After" in headers, (method, path)
