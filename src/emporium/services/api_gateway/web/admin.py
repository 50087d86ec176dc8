"""The console at `/admin`: administrators create products (with an image) and set stock.

Same rule as the shop: only the public API. The page asks `/api/v1/users/me` whether the
visitor has the `admin` role to answer 403 early; the API checks the role again on every
write, so the console cannot do more than the visitor's token allows.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from emporium.services.api_gateway.web.account import problem_text
from emporium.services.api_gateway.web.client import ApiSession
from emporium.services.api_gateway.web.orders import sign_in_first
from emporium.services.api_gateway.web.render import Renderer

PRODUCT_FIELDS = ("sku", "name", "description", "category", "price_minor", "currency")
MAX_IMAGE_BYTES = 10 * 1024 * 1024


async def is_admin(api: ApiSession) -> bool:
    me = await api.call("GET", "/api/v1/users/me")
    return me.status_code == 200 and "admin" in me.json().get("roles", [])


async def console(
    request: Request,
    api: ApiSession,
    render: Renderer,
    status: int = 200,
    message: str | None = None,
    error: str | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    if api.tokens is None:
        return sign_in_first(request, api, render)
    if not await is_admin(api):
        return render.page(request, api, "error.html", 403, message="Administrators only.")
    answer = await api.call("GET", "/api/v1/products", params={"limit": 50})
    products = answer.json()["items"] if answer.status_code == 200 else []
    return render.page(
        request,
        api,
        "admin.html",
        status,
        products=products,
        items=products,
        message=message,
        error=error,
        values=values or {"currency": "USD"},
    )


async def console_page(request: Request, api: ApiSession, render: Renderer) -> Response:
    return await console(request, api, render)


def whole(text: str) -> int | str:
    """A form's number as the JSON integer the API expects (left as text if it is not one:
    the API's 400 then names the field)."""
    return int(text) if text.strip().isdigit() else text


async def create_product(request: Request, api: ApiSession, render: Renderer) -> Response:
    form = request.state.form
    values = {k: str(form.get(k, "")) for k in PRODUCT_FIELDS}
    body: dict[str, Any] = {**values, "price_minor": whole(values["price_minor"])}
    made = await api.call("POST", "/api/v1/products", json=body)
    if made.status_code != 201:
        error = problem_text(made.json() if made.content else None, "Not created.")
        return await console(request, api, render, 400, error=error, values=values)
    product = made.json()
    image = form.get("image")
    if isinstance(image, UploadFile) and image.filename:
        content = await image.read(MAX_IMAGE_BYTES + 1)
        files = {"file": (image.filename, content, image.content_type or "image/png")}
        uploaded = await api.call("POST", f"/api/v1/products/{product['id']}/images", files=files)
        if uploaded.status_code != 201:
            error = problem_text(uploaded.json() if uploaded.content else None, "Bad image.")
            return await console(request, api, render, 400, error=f"Created, but {error}")
    return await console(request, api, render, message=f"Created {product['name']}.")


async def set_stock(request: Request, api: ApiSession, render: Renderer) -> Response:
    form = request.state.form
    sku = str(form.get("sku", ""))
    body: dict[str, Any] = {"on_hand": whole(str(form.get("on_hand", "")))}
    if str(form.get("low_stock_threshold", "")).strip():
        body["low_stock_threshold"] = whole(str(form.get("low_stock_threshold")))
    answer = await api.call("PUT", f"/api/v1/inventory/{sku}", json=body)
    if answer.status_code != 200:
        error = problem_text(answer.json() if answer.content else None, "Stock not set.")
        return await console(request, api, render, 400, error=error)
    stock = answer.json()
    return await console(
        request, api, render, message=f"Stock of {sku}: {stock['available']} available."
    )


ROUTES = (
    ("/admin", console_page, ["GET"]),
    ("/admin/products", create_product, ["POST"]),
    ("/admin/stock", set_stock, ["POST"]),
)
