"""What every console page shares: the administrator gate and the API's error text.

Same rule as the shop: only the public API. The gate asks `/api/v1/users/me` whether the
visitor has the `admin` role to answer 403 early; the API checks the role again on every
write, so the console cannot do more than the visitor's token allows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response

from emporium.services.api_gateway.web.account import problem_text
from emporium.services.api_gateway.web.client import ApiSession
from emporium.services.api_gateway.web.orders import sign_in_first
from emporium.services.api_gateway.web.render import Renderer

Handler = Callable[[Request, ApiSession, Renderer], Awaitable[Response]]


async def is_admin(api: ApiSession) -> bool:
    me = await api.call("GET", "/api/v1/users/me")
    return me.status_code == 200 and "admin" in me.json().get("roles", [])


def admins_only(handler: Handler) -> Handler:
    """Sign in first without a session, 403 for a visitor who is not an administrator."""

    async def guarded(request: Request, api: ApiSession, render: Renderer) -> Response:
        if api.tokens is None:
            return sign_in_first(request, api, render)
        if not await is_admin(api):
            return render.page(request, api, "error.html", 403, message="Administrators only.")
        return await handler(request, api, render)

    return guarded


def error_of(answer: httpx.Response, fallback: str) -> str:
    try:
        body: Any = answer.json() if answer.content else None
    except ValueError:
        body = None
    return problem_text(body, fallback)


def whole(text: str) -> int | str:
    """A form's number as the JSON integer the API expects (left as text if it is not one:
    the API's 400 then names the field)."""
    return int(text) if text.strip().isdigit() else text
