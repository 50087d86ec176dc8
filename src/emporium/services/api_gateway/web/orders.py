"""Checkout, the order page that follows the saga, order history and notifications.

The checkout form carries a fresh `Idempotency-Key` (made when the form is rendered), so a
double click or a resubmitted form replays the first order instead of placing a second.
"""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import Response

from emporium.services.api_gateway.web import cookies
from emporium.services.api_gateway.web.account import problem_text
from emporium.services.api_gateway.web.client import ApiSession
from emporium.services.api_gateway.web.render import Renderer
from emporium.services.api_gateway.web.shop import cart_lines

CARDS = (
    ("tok_visa", "Visa ending 4242 (succeeds)"),
    ("tok_chargeDeclined", "Card that is declined"),
    ("tok_chargeDeclinedInsufficientFunds", "Card with insufficient funds"),
)
ADDRESS_FIELDS = ("line1", "city", "postal_code", "country")
DECLINE_TEXT = {
    "insufficient_funds": "Your card was declined: insufficient funds.",
}


def sign_in_first(request: Request, api: ApiSession, render: Renderer) -> Response:
    return render.redirect(request, api, f"/signin?next={request.url.path}")


async def checkout_form(
    request: Request,
    api: ApiSession,
    render: Renderer,
    status: int = 200,
    error: str | None = None,
) -> Response:
    if api.tokens is None:
        return sign_in_first(request, api, render)
    lines = await cart_lines(api, cookies.cart_of(request))
    form = getattr(request.state, "form", None) or {}
    return render.page(
        request,
        api,
        "checkout.html",
        status,
        products=[line["product"] for line in lines],
        lines=lines,
        total=sum(line["product"]["price_minor"] * line["quantity"] for line in lines),
        currency=lines[0]["product"]["currency"] if lines else "USD",
        cards=CARDS,
        address={k: str(form.get(k, "")) for k in ADDRESS_FIELDS},
        idempotency_key=str(uuid.uuid4()),
        error=error,
    )


async def checkout_page(request: Request, api: ApiSession, render: Renderer) -> Response:
    return await checkout_form(request, api, render)


async def place_order(request: Request, api: ApiSession, render: Renderer) -> Response:
    if api.tokens is None:
        return sign_in_first(request, api, render)
    form = request.state.form
    cart = cookies.cart_of(request)
    if not cart:
        return render.redirect(request, api, "/cart")
    body = {
        "items": [{"product_id": p, "quantity": q} for p, q in cart.items()],
        "payment_token": str(form.get("payment_token", "")),
        "shipping_address": {k: str(form.get(k, "")) for k in ADDRESS_FIELDS},
    }
    key = str(form.get("idempotency_key", "")) or str(uuid.uuid4())
    answer = await api.call("POST", "/api/v1/orders", json=body, headers={"Idempotency-Key": key})
    if answer.status_code in (200, 201, 202):
        response = render.redirect(request, api, f"/orders/{answer.json()['id']}")
        cookies.store_cart(request, response, {})
        return response
    if answer.status_code == 401:
        return sign_in_first(request, api, render)
    payload = answer.json() if answer.content else None
    if answer.status_code == 409:
        error = "Some items are out of stock now: nothing was charged. Change the cart and retry."
    else:
        error = problem_text(payload, "The order could not be placed.")
    return await checkout_form(request, api, render, 400, error)


def payment_message(order: dict[str, object]) -> str | None:
    payment = order.get("payment")
    if order.get("status") != "CANCELLED" or not isinstance(payment, dict):
        return None
    reason = str(payment.get("reason") or "")
    if payment.get("status") == "DECLINED":
        return DECLINE_TEXT.get(reason, "Your card was declined. Nothing was charged.")
    return f"The order was cancelled{': ' + reason if reason else ''}."


async def order_page(request: Request, api: ApiSession, render: Renderer) -> Response:
    if api.tokens is None:
        return sign_in_first(request, api, render)
    answer = await api.call("GET", f"/api/v1/orders/{request.path_params['id']}")
    if answer.status_code != 200:
        return render.page(request, api, "error.html", 404, message="No such order.")
    order = answer.json()
    return render.page(request, api, "order.html", order=order, declined=payment_message(order))


async def order_again(request: Request, api: ApiSession, render: Renderer) -> Response:
    """A declined order's items back into the cart, to pay with another card."""
    if api.tokens is None:
        return sign_in_first(request, api, render)
    answer = await api.call("GET", f"/api/v1/orders/{request.path_params['id']}")
    if answer.status_code != 200:
        return render.page(request, api, "error.html", 404, message="No such order.")
    cart = cookies.cart_of(request)
    for item in answer.json()["items"]:
        quantity = cart.get(item["product_id"], 0) + int(item["quantity"])
        cart[item["product_id"]] = min(cookies.MAX_QUANTITY, quantity)
    response = render.redirect(request, api, "/cart")
    cookies.store_cart(request, response, cart)
    return response


async def order_history(request: Request, api: ApiSession, render: Renderer) -> Response:
    if api.tokens is None:
        return sign_in_first(request, api, render)
    answer = await api.call("GET", "/api/v1/orders", params={"limit": 50})
    items = answer.json()["items"] if answer.status_code == 200 else []
    return render.page(request, api, "orders.html", orders=items)


async def notifications(request: Request, api: ApiSession, render: Renderer) -> Response:
    if api.tokens is None:
        return sign_in_first(request, api, render)
    answer = await api.call("GET", "/api/v1/notifications", params={"limit": 50})
    items = answer.json()["items"] if answer.status_code == 200 else []
    return render.page(request, api, "notifications.html", notifications=items)


ROUTES = (
    ("/checkout", checkout_page, ["GET"]),
    ("/checkout", place_order, ["POST"]),
    ("/orders", order_history, ["GET"]),
    ("/orders/{id}", order_page, ["GET"]),
    ("/orders/{id}/again", order_again, ["POST"]),
    ("/notifications", notifications, ["GET"]),
)
