"""The product page and the cart, which is kept in a cookie."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from emporium.services.api_gateway.web import cookies
from emporium.services.api_gateway.web.browse import category_url
from emporium.services.api_gateway.web.client import ApiSession
from emporium.services.api_gateway.web.picks import recommended
from emporium.services.api_gateway.web.render import Renderer


async def product(request: Request, api: ApiSession, render: Renderer) -> Response:
    answer = await api.call("GET", f"/api/v1/products/{request.path_params['id']}")
    if answer.status_code != 200:
        return render.page(request, api, "error.html", 404, message="No such product.")
    item = answer.json()
    stock, together = await asyncio.gather(
        api.call("GET", f"/api/v1/inventory/{item['sku']}"), recommended(api, item["id"])
    )
    available = stock.json().get("available", 0) if stock.status_code == 200 else 0
    return render.page(
        request,
        api,
        "product.html",
        products=[item, *together],
        product=item,
        available=available,
        together=together,
        category_url=category_url(item["category"]),
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
    ("/products/{id}", product, ["GET"]),
    ("/cart", cart, ["GET"]),
    ("/cart/add", cart_add, ["POST"]),
    ("/cart/remove", cart_remove, ["POST"]),
)
