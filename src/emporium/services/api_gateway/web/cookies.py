"""What the browser keeps: the token pair, a CSRF token and the cart, all in cookies.

Tokens are `HttpOnly` (no script can read them), `SameSite=Lax` (not sent on cross-site
posts) and `Secure` when the page came over TLS. Every form post also carries the CSRF
token, compared with its cookie (double submit), and a cross-origin `Origin` is refused.
The cart is `product id -> quantity` only: prices always come from the API.
"""

from __future__ import annotations

import hmac
import re
import secrets

from starlette.requests import Request
from starlette.responses import Response

from emporium.services.api_gateway.web.client import Tokens

ACCESS = "emporium_access"
REFRESH = "emporium_refresh"
CSRF = "emporium_csrf"
CART = "emporium_cart"
SESSION_SECONDS = 14 * 24 * 3600
CART_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
MAX_CART_LINES = 50
MAX_QUANTITY = 100


def tokens_of(request: Request) -> Tokens | None:
    access, refresh = request.cookies.get(ACCESS), request.cookies.get(REFRESH)
    return Tokens(access, refresh) if access and refresh else None


def _set(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def store_tokens(request: Request, response: Response, tokens: Tokens | None) -> None:
    if tokens is None:
        response.delete_cookie(ACCESS, path="/")
        response.delete_cookie(REFRESH, path="/")
        return
    _set(request, response, ACCESS, tokens.access)
    _set(request, response, REFRESH, tokens.refresh)


def csrf_token(request: Request) -> str:
    """The visitor's CSRF token (a new one when it has none; `ensure_csrf` stores it)."""
    existing = request.cookies.get(CSRF, "")
    if len(existing) >= 32:
        return existing
    if not hasattr(request.state, "csrf"):  # one new token per request, not one per form
        request.state.csrf = secrets.token_urlsafe(32)
    return str(request.state.csrf)


def ensure_csrf(request: Request, response: Response) -> None:
    if request.cookies.get(CSRF, "") != csrf_token(request):
        _set(request, response, CSRF, csrf_token(request))


def csrf_ok(request: Request, submitted: str) -> bool:
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        return False
    cookie = request.cookies.get(CSRF, "")
    return len(cookie) >= 32 and hmac.compare_digest(cookie, submitted)


def cart_of(request: Request) -> dict[str, int]:
    """The cart cookie `id:qty|id:qty`; anything malformed is dropped, never trusted."""
    cart: dict[str, int] = {}
    for item in request.cookies.get(CART, "").split("|"):
        product_id, _, quantity = item.partition(":")
        if CART_ID.match(product_id) and quantity.isdigit() and len(cart) < MAX_CART_LINES:
            cart[product_id] = max(1, min(MAX_QUANTITY, int(quantity)))
    return cart


def store_cart(request: Request, response: Response, cart: dict[str, int]) -> None:
    if not cart:
        response.delete_cookie(CART, path="/")
        return
    _set(request, response, CART, "|".join(f"{pid}:{qty}" for pid, qty in cart.items()))
