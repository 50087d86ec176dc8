"""The console's products at `/admin`: list, create (with an image), edit and delete."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from emporium.services.api_gateway.web.client import ApiSession
from emporium.services.api_gateway.web.console import admins_only, error_of, whole
from emporium.services.api_gateway.web.paging import Pager
from emporium.services.api_gateway.web.render import Renderer

PRODUCT_FIELDS = ("sku", "name", "description", "category", "price_minor", "currency")
MAX_IMAGE_BYTES = 10 * 1024 * 1024
PAGE_SIZE = 20


async def console(
    request: Request,
    api: ApiSession,
    render: Renderer,
    status: int = 200,
    message: str | None = None,
    error: str | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    pager = Pager.of(request) if request.method == "GET" else Pager("", [])
    params: dict[str, Any] = {"limit": PAGE_SIZE}
    if pager.cursor:
        params["cursor"] = pager.cursor
    answer = await api.call("GET", "/api/v1/products", params=params)
    page = answer.json() if answer.status_code == 200 else {"items": [], "next_cursor": None}
    return render.page(
        request,
        api,
        "admin.html",
        status,
        products=page["items"],
        items=page["items"],
        pages=pager.links("/admin", {}, page.get("next_cursor")),
        message=message,
        error=error,
        values=values or {"currency": "USD"},
        previews=True,
        section="products",
    )


async def console_page(request: Request, api: ApiSession, render: Renderer) -> Response:
    return await console(request, api, render)


def product_body(form: FormData) -> tuple[dict[str, str], dict[str, Any]]:
    """The form's text values (to show again) and the JSON body for the API."""
    values = {k: str(form.get(k, "")) for k in PRODUCT_FIELDS}
    return values, {**values, "price_minor": whole(values["price_minor"])}


async def upload_image(api: ApiSession, product_id: str, form: FormData) -> str | None:
    """Send the form's image, if one was chosen; the API's complaint, if any."""
    image = form.get("image")
    if not isinstance(image, UploadFile) or not image.filename:
        return None
    content = await image.read(MAX_IMAGE_BYTES + 1)
    files = {"file": (image.filename, content, image.content_type or "image/png")}
    uploaded = await api.call("POST", f"/api/v1/products/{product_id}/images", files=files)
    return None if uploaded.status_code == 201 else error_of(uploaded, "Bad image.")


async def create_product(request: Request, api: ApiSession, render: Renderer) -> Response:
    form = request.state.form
    values, body = product_body(form)
    made = await api.call("POST", "/api/v1/products", json=body)
    if made.status_code != 201:
        error = error_of(made, "Not created.")
        return await console(request, api, render, 400, error=error, values=values)
    product = made.json()
    problem = await upload_image(api, product["id"], form)
    if problem:
        return await console(request, api, render, 400, error=f"Created, but {problem}")
    return await console(request, api, render, message=f"Created {product['name']}.")


async def edit_form(
    request: Request,
    api: ApiSession,
    render: Renderer,
    status: int = 200,
    message: str | None = None,
    error: str | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    answer = await api.call("GET", f"/api/v1/products/{request.path_params['id']}")
    if answer.status_code != 200:
        return render.page(request, api, "error.html", 404, message="No such product.")
    product = answer.json()
    shown = values or {k: str(product.get(k, "")) for k in PRODUCT_FIELDS}
    return render.page(
        request,
        api,
        "admin_edit.html",
        status,
        products=[product],
        product=product,
        values=shown,
        message=message,
        error=error,
        previews=True,
        section="products",
    )


async def edit_page(request: Request, api: ApiSession, render: Renderer) -> Response:
    return await edit_form(request, api, render)


async def save_product(request: Request, api: ApiSession, render: Renderer) -> Response:
    form = request.state.form
    values, body = product_body(form)
    product_id = request.path_params["id"]
    saved = await api.call("PATCH", f"/api/v1/products/{product_id}", json=body)
    if saved.status_code != 200:
        error = error_of(saved, "Not saved.")
        return await edit_form(request, api, render, 400, error=error, values=values)
    problem = await upload_image(api, product_id, form)
    if problem:
        return await edit_form(request, api, render, 400, error=f"Saved, but {problem}")
    return await edit_form(request, api, render, message=f"Saved {saved.json()['name']}.")


async def delete_product(request: Request, api: ApiSession, render: Renderer) -> Response:
    product_id = request.path_params["id"]
    name = str(request.state.form.get("name", "")) or product_id
    answer = await api.call("DELETE", f"/api/v1/products/{product_id}")
    if answer.status_code not in (204, 404):
        return await console(request, api, render, 400, error=error_of(answer, "Not deleted."))
    return await console(request, api, render, message=f"Deleted {name}.")


ROUTES = (
    ("/admin", admins_only(console_page), ["GET"]),
    ("/admin/products", admins_only(create_product), ["POST"]),
    ("/admin/products/{id}", admins_only(edit_page), ["GET"]),
    ("/admin/products/{id}", admins_only(save_product), ["POST"]),
    ("/admin/products/{id}/delete", admins_only(delete_product), ["POST"]),
)
