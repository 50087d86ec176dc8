"""The console's stock at `/admin/stock`: every SKU's on hand, reserved, available and
low-stock threshold (one `GET /api/v1/inventory/{sku}` per product of the page), set with
`PUT /api/v1/inventory/{sku}`."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from emporium.services.api_gateway.web.client import ApiSession
from emporium.services.api_gateway.web.console import admins_only, error_of, whole
from emporium.services.api_gateway.web.paging import Pager
from emporium.services.api_gateway.web.render import Renderer

PAGE_SIZE = 20


def stock_state(stock: dict[str, Any] | None) -> str:
    if stock is None:
        return "not stocked"
    if stock["available"] <= 0:
        return "out"
    if stock["available"] <= stock.get("low_stock_threshold", 0):
        return "low"
    return "ok"


async def stock_page(
    request: Request,
    api: ApiSession,
    render: Renderer,
    status: int = 200,
    message: str | None = None,
    error: str | None = None,
) -> Response:
    pager = Pager.of(request) if request.method == "GET" else Pager("", [])
    params: dict[str, Any] = {"limit": PAGE_SIZE}
    if pager.cursor:
        params["cursor"] = pager.cursor
    answer = await api.call("GET", "/api/v1/products", params=params)
    page = answer.json() if answer.status_code == 200 else {"items": [], "next_cursor": None}
    stocks = await asyncio.gather(
        *(api.call("GET", f"/api/v1/inventory/{p['sku']}") for p in page["items"])
    )
    rows = []
    for product, stock in zip(page["items"], stocks, strict=True):
        level = stock.json() if stock.status_code == 200 else None
        rows.append({"product": product, "stock": level, "state": stock_state(level)})
    chosen = {"sku": request.query_params.get("sku", "")} if request.method == "GET" else {}
    for row in rows:  # "Change" on a row fills the form with that SKU's numbers
        if chosen and row["product"]["sku"] == chosen["sku"] and row["stock"]:
            chosen.update({k: str(row["stock"][k]) for k in ("on_hand", "low_stock_threshold")})
    return render.page(
        request,
        api,
        "admin_stock.html",
        status,
        rows=rows,
        chosen=chosen,
        pages=pager.links("/admin/stock", {}, page.get("next_cursor")),
        message=message,
        error=error,
        section="stock",
    )


async def stock_view(request: Request, api: ApiSession, render: Renderer) -> Response:
    return await stock_page(request, api, render)


async def set_stock(request: Request, api: ApiSession, render: Renderer) -> Response:
    form = request.state.form
    sku = str(form.get("sku", ""))
    body: dict[str, Any] = {"on_hand": whole(str(form.get("on_hand", "")))}
    if str(form.get("low_stock_threshold", "")).strip():
        body["low_stock_threshold"] = whole(str(form.get("low_stock_threshold")))
    answer = await api.call("PUT", f"/api/v1/inventory/{sku}", json=body)
    if answer.status_code != 200:
        return await stock_page(request, api, render, 400, error=error_of(answer, "Not set."))
    stock = answer.json()
    message = f"Stock of {sku}: {stock['available']} available."
    return await stock_page(request, api, render, message=message)


ROUTES = (
    ("/admin/stock", admins_only(stock_view), ["GET"]),
    ("/admin/stock", admins_only(set_stock), ["POST"]),
)
