"""The storefront's ASGI app and `WebFirst`, which puts it beside the REST app.

Every page handler asks the public API (`client.ApiSession`) and renders a template; form
posts are CSRF-checked first. `/api/...`, `/openapi.json` and `/docs` never reach this app,
so the REST contract, its problem+json errors and its headers stay exactly as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emporium.services.api_gateway.web import (
    account,
    admin,
    admin_analytics,
    admin_stock,
    browse,
    cookies,
    orders,
    shop,
)
from emporium.services.api_gateway.web.assets import Assets
from emporium.services.api_gateway.web.client import ApiSession, new_http_client
from emporium.services.api_gateway.web.render import Renderer

log = logging.getLogger(__name__)
MAX_UPLOAD_BYTES = 10 * 1024 * 1024 + 1  # the API's image limit, so it answers 413
API_PREFIXES = ("/api/", "/openapi.json", "/docs", "/redoc")
Handler = Callable[[Request, ApiSession, Renderer], Awaitable[Response]]


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith(API_PREFIXES)


class WebFirst:
    """Route by path: the REST paths to `api`, all others to the storefront `web`."""

    def __init__(self, api: Any, web: Any) -> None:
        self.api = api
        self.web = web

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan" or is_api_path(scope.get("path", "")):
            await self.api(scope, receive, send)
        else:
            await self.web(scope, receive, send)


def create_web(api_url: str, transport: httpx.AsyncBaseTransport | None = None) -> Starlette:
    """The pages app; it calls the REST API at `api_url` (the gateway's own loopback port)."""
    http = new_http_client(api_url, transport)
    renderer = Renderer(Assets())

    def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            api = ApiSession(http, cookies.tokens_of(request))
            if request.method == "POST":
                form = await request.form(max_part_size=MAX_UPLOAD_BYTES)
                request.state.form = form
                if not cookies.csrf_ok(request, str(form.get("csrf", ""))):
                    return renderer.page(
                        request,
                        api,
                        "error.html",
                        403,
                        message="This form has expired: go back, reload the page and try again.",
                    )
            return await handler(request, api, renderer)

        return endpoint

    async def static(request: Request) -> Response:
        found = renderer.assets.response(request, request.path_params["name"])
        if found is None:
            raise HTTPException(404)
        return found

    routes = [Route("/static/{name}", static)]
    pages = (browse, shop, account, orders, admin, admin_stock, admin_analytics)
    for path, handler, methods in (route for module in pages for route in module.ROUTES):
        routes.append(Route(path, page(handler), methods=methods))

    async def not_found(request: Request, _: Exception) -> Response:
        api = ApiSession(http, cookies.tokens_of(request))
        return renderer.page(request, api, "error.html", 404, message="Page not found.")

    async def failed(request: Request, exc: Exception) -> Response:
        log.error("page %s failed", request.url.path, exc_info=exc)
        api = ApiSession(http, cookies.tokens_of(request))
        return renderer.page(
            request, api, "error.html", 500, message="Something went wrong on our side."
        )

    web = Starlette(
        routes=routes,
        exception_handlers={404: not_found, 405: not_found, 500: failed, Exception: failed},
    )
    # Lifespan events go to the REST app (WebFirst), so the owner closes the client.
    web.state.close = http.aclose
    return web
