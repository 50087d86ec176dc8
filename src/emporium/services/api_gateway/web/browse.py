"""Listings: the home page (categories, best sellers, recommendations), category pages and
search, both paged with the API's cursors (`paging.Pager`)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response

from emporium.services.api_gateway.web.client import ApiSession
from emporium.services.api_gateway.web.paging import Pager
from emporium.services.api_gateway.web.picks import best_sellers, recommended
from emporium.services.api_gateway.web.render import Renderer

PAGE_SIZE = 12
SORTS = ("relevance", "price_asc", "price_desc", "newest")
SORT_NAMES = {
    "relevance": "Relevance",
    "price_asc": "Price, low to high",
    "price_desc": "Price, high to low",
    "newest": "Newest",
}
EMPTY_PAGE: dict[str, Any] = {"items": [], "total": 0, "facets": {}, "next_cursor": None}


async def categories(api: ApiSession) -> list[tuple[str, int]]:
    """The catalog's categories with counts, from the search facets."""
    answer = await api.call("GET", "/api/v1/search", params={"limit": 1})
    if answer.status_code != 200:
        return []
    facets: dict[str, int] = answer.json().get("facets", {}).get("category", {})
    return sorted(facets.items())


async def none() -> list[dict[str, Any]]:
    return []


async def home(request: Request, api: ApiSession, render: Renderer) -> Response:
    if request.query_params.get("category"):  # the first increment's category links
        return render.redirect(request, api, category_url(request.query_params["category"]))
    cats, sellers, latest, for_you = await asyncio.gather(
        categories(api),
        best_sellers(api),
        api.call("GET", "/api/v1/products", params={"limit": PAGE_SIZE}),
        recommended(api) if api.tokens is not None else none(),
    )
    newest = latest.json()["items"] if latest.status_code == 200 else []
    return render.page(
        request,
        api,
        "home.html",
        products=[*sellers, *for_you, *newest],
        categories=cats,
        best_sellers=sellers,
        for_you=for_you,
        newest=newest,
    )


def category_url(name: str) -> str:
    return f"/category/{quote(name, safe='')}"


async def category(request: Request, api: ApiSession, render: Renderer) -> Response:
    name = request.path_params["name"]
    pager = Pager.of(request)
    params: dict[str, Any] = {"category": name, "limit": PAGE_SIZE}
    if pager.cursor:
        params["cursor"] = pager.cursor
    answer, cats = await asyncio.gather(
        api.call("GET", "/api/v1/products", params=params), categories(api)
    )
    ok = answer.status_code == 200
    page = answer.json() if ok else EMPTY_PAGE
    return render.page(
        request,
        api,
        "category.html",
        200 if ok else 400,
        products=page["items"],
        items=page["items"],
        category=name,
        categories=cats,
        pages=pager.links(category_url(name), {}, page.get("next_cursor")),
    )


async def search(request: Request, api: ApiSession, render: Renderer) -> Response:
    query = request.query_params
    pager = Pager.of(request)
    params: dict[str, Any] = {"q": query.get("q", ""), "limit": PAGE_SIZE}
    for name in ("category", "min_price", "max_price"):
        if query.get(name):
            params[name] = query[name]
    if query.get("sort") in SORTS:
        params["sort"] = query["sort"]
    kept = {k: str(v) for k, v in params.items() if k != "limit"}
    if pager.cursor:
        params["cursor"] = pager.cursor
    answer = await api.call("GET", "/api/v1/search", params=params)
    ok = answer.status_code == 200
    body: dict[str, Any] = answer.json() if ok else EMPTY_PAGE
    facets = sorted(body.get("facets", {}).get("category", {}).items())
    return render.page(
        request,
        api,
        "search.html",
        status=200 if ok else 400,
        products=body["items"],
        items=body["items"],
        total=body.get("total", 0),
        facets=facets,
        facet_links=[(n, c, first_page("/search", {**kept, "category": n})) for n, c in facets],
        params=params,
        sorts=SORT_NAMES,
        invalid=not ok,
        pages=pager.links("/search", kept, body.get("next_cursor")),
    )


def first_page(path: str, params: dict[str, str]) -> str:
    """A link to the first page of a listing with these parameters."""
    return f"{path}?{urlencode({k: v for k, v in params.items() if v})}"


ROUTES = (
    ("/", home, ["GET"]),
    ("/category/{name:path}", category, ["GET"]),
    ("/search", search, ["GET"]),
)
