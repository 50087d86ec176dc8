"""Rendering a page: Jinja2 with autoescape, the security headers, the cookies to write.

Every HTML answer carries a Content-Security-Policy without `unsafe-inline`: scripts and
styles only from this origin's files, images from this origin and the image origins of the
page's own products (cdn serves them, possibly on another origin), forms only to here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from emporium.services.api_gateway.web import cookies
from emporium.services.api_gateway.web.assets import Assets
from emporium.services.api_gateway.web.client import ApiSession

TEMPLATES = Path(__file__).parent / "templates"
RENDITION_WIDTHS = (240, 480, 960)


def money(minor: int, currency: str = "USD") -> str:
    sign = "-" if minor < 0 else ""
    return f"{sign}{abs(minor) // 100}.{abs(minor) % 100:02d} {currency}"


def srcset(url: str) -> str:
    """cdn's width renditions (`?w=`) of an image, for the browser to choose from."""
    joiner = "&" if "?" in url else "?"
    return ", ".join(f"{url}{joiner}w={w} {w}w" for w in RENDITION_WIDTHS)


def security_headers(image_origins: set[str], previews: bool = False) -> dict[str, str]:
    """`previews`: the page shows a chosen file before upload (`blob:` images, console only)."""
    images = " ".join(["'self'", *sorted(image_origins), *(["blob:"] if previews else [])])
    policy = (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src {images}; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
    }


def image_origins(products: list[dict[str, Any]]) -> set[str]:
    found = set()
    for product in products:
        for url in product.get("image_urls", []):
            parts = urlsplit(url)
            if parts.scheme in ("http", "https") and parts.netloc:
                found.add(f"{parts.scheme}://{parts.netloc}")
    return found


@dataclass
class Renderer:
    assets: Assets

    def __post_init__(self) -> None:
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["asset"] = self.assets.url
        self.env.filters["money"] = money
        self.env.filters["srcset"] = srcset

    def page(
        self,
        request: Request,
        api: ApiSession,
        template: str,
        status: int = 200,
        products: list[dict[str, Any]] | None = None,
        previews: bool = False,
        **context: Any,
    ) -> Response:
        html = self.env.get_template(template).render(
            request=request,
            csrf=cookies.csrf_token(request),
            signed_in=api.tokens is not None,
            cart_count=sum(cookies.cart_of(request).values()),
            status_code=status,
            **context,
        )
        response = HTMLResponse(
            html,
            status_code=status,
            headers=security_headers(image_origins(products or []), previews),
        )
        return finish(request, api, response)

    def redirect(self, request: Request, api: ApiSession, to: str) -> Response:
        response = RedirectResponse(to, status_code=303, headers=security_headers(set()))
        return finish(request, api, response)


def finish(request: Request, api: ApiSession, response: Response) -> Response:
    """Write what changed during the request: renewed or dropped tokens, the CSRF cookie."""
    if api.renewed or api.signed_out:
        cookies.store_tokens(request, response, api.tokens)
    cookies.ensure_csrf(request, response)
    return response
