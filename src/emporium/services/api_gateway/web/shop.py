"""Browsing and the cart: home, search, product pages, the cart kept in a cookie."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from emporium.services.api_gateway.web import cookies
from emporium.services.api_gateway.web.client import ApiSession
from emporium.services.api_gateway.web.render import Renderer

PAGE_SIZE = 24
SORTS = ("relevance", "price_asc", "price_desc", "newest")


async def categories(api: ApiSession) -> list[tuple[str, int]]:
    """The catalog's categories with counts, from the search facets."""
    answer = await api.call("GET", "/api/v1/search", params={"limit": 1})
    if answer.status_code != 200:
        return []
    facets: dict[str, int] = answer.json().get("facets", {}).get("category", {})
    return sorted(facets.items())


async def home(request: Request, api: ApiSession, render: Renderer) -> Response:
    params: dict[str, Any] = {"limit": PAGE_SIZE}
    category = request.query_params.get("category", "")
    if category:
        params["category"] = category
    if request.query_params.get("cursor"):
        params["cursor"] = request.query_params["cursor"]
    answer, cats = await asyncio.gather(
        api.call("GET", "/api/v1/products", params=params), categories(api)
    )
    page = answer.json() if answer.status_code == 200 else {"items": [], "next_cursor": None}
    return render.page(
        request,
        api,
        "home.html",
        products=page["items"],
        items=page["items"],
        next_cursor=page.get("next_cursor"),
        category=category,
        categories=cats,
    )


async def search(request: Request, api: ApiSession, render: Renderer) -> Response:
    query = request.query_params
    params: dict[str, Any] = {"q": query.get("q", ""), "limit": PAGE_SIZE}
    for name in ("category", "min_price", "max_price", "cursor"):
        if query.get(name):
            params[name] = query[name]
    if query.get("sort") in SORTS:
        params["sort"] = query["sort"]
    answer = await api.call("GET", "/api/v1/search", params=params)
    ok = answer.status_code == 200
    empty: dict[str, Any] = {"items": [], "total": 0, "facets": {}, "next_cursor": None}
    body: dict[str, Any] = answer.json() if ok else empty
    return render.page(
        request,
        api,
        "search.html",
        status=200 if ok else 400,
        products=body["items"],
        items=body["items"],
        total=body.get("total", 0),
        facets=sorted(body.get("facets", {}).get("category", {}).items()),
        params=params,
        sorts=SORTS,
        invalid=not ok,
    )


async def product(request: Request, api: ApiSession, render: Renderer) -> Response:
    answer = await api.call("GET", f"/api/v1/products/{request.path_params['id']}")
    if answer.status_code != 200:
        return render.page(request, api, "error.html", 404, message="No such product.")
    item = answer.json()
    stock = await api.call("GET", f"/api/v1/inventory/{item['sku']}")
    available = stock.json().get("available", 0) if stock.status_code == 200 else 0
    return render.page(
        request, api, "product.html", products=[item], product=item, available=available
    )


async def cart_lines(api: ApiSession, cart: dict[str, int]) -> list[dict[str, Any]]:
    """The cart's products as the API knows them now (a deleted one drops out)."""
    answers = await asyncio.gather(*(api.call("GET", f"/api/v1/products/{p}") for p in cart))
    lines = []
    for answer in answers:
        if answer.status_code == 200:
            item = answer.json()
            quantity = cart[item["id"]]
            lines.append({"product": item, "quantity": quantity})
    return lines


async def cart(request: Request, api: ApiSession, render: Renderer) -> Response:
    lines = await cart_lines(api, cookies.cart_of(request))
    total = sum(line["product"]["price_minor"] * line["quantity"] for line in lines)
    currency = lines[0]["product"]["currency"] if lines else "USD"
    return render.page(
        request,
        api,
        "cart.html",
        products=[line["product"] for line in lines],
        lines=lines,
        total=total,
        currency=currency,
    )


async def cart_add(request: Request, api: ApiSession, render: Renderer) -> Response:
    form = request.state.form
    product_id = str(form.get("product_id", ""))
    quantity = str(form.get("quantity", "1"))
    current = cookies.cart_of(request)
    if cookies.CART_ID.match(product_id) and quantity.isdigit() and int(quantity) > 0:
        current[product_id] = min(cookies.MAX_QUANTITY, current.get(product_id, 0) + int(quantity))
    response = render.redirect(request, api, "/cart")
    cookies.store_cart(request, response, current)
    return response


async def cart_remove(request: Request, api: ApiSession, render: Renderer) -> Response:
    current = cookies.cart_of(request)
    current.pop(str(request.state.form.get("product_id", "")), None)
    response = render.redirect(request, api, "/cart")
    cookies.store_cart(request, response, current)
    return response


ROUTES = (
    ("/", home, ["GET"]),
    ("/search", search, ["GET"]),
    ("/products/{id}", product, ["GET"]),
    ("/cart", cart, ["GET"]),
    ("/cart/add", cart_add, ["POST"]),
    ("/cart/remove", cart_remove, ["POST"]),
)
