"""HTTP entrypoint of cdn-service: the image bytes, on cdn's HTTP port next to /metrics.

`GET /images/<digest>.<ext>[?w=<width>]` answers with a strong `ETag` and
`Cache-Control: public, max-age=31536000, immutable` (content-addressed URLs never change
meaning), `304` on a matching `If-None-Match`, `404` for an unknown image and `400` for a
bad `w`, both as RFC 9457 problem+json like the gateway's errors.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emporium.chassis.errors import DomainError
from emporium.services.cdn import handlers
from emporium.services.cdn.store import ImageStore

PROBLEM = "application/problem+json"
TYPE_BASE = "https://emporium.dev/problems/"


def problem(err: DomainError) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + err.code.value,
        "title": err.reason or err.code.value,
        "status": err.http_status,
        "detail": err.message,
    }
    if err.fields:
        body["errors"] = [{"field": f.field, "message": f.message} for f in err.fields]
    return JSONResponse(body, status_code=err.http_status, media_type=PROBLEM)


def image_routes(images: ImageStore) -> Starlette:
    """The ASGI app mounted on cdn's HTTP port (GET and HEAD)."""

    async def get_image(request: Request) -> Response:
        try:
            served = await handlers.serve_image(
                images,
                request.path_params["name"],
                request.query_params.get("w"),
                request.headers.get("if-none-match"),
            )
        except DomainError as err:
            return problem(err)
        headers = {"ETag": served.etag, "Cache-Control": served.cache_control}
        if served.status == 304:
            return Response(status_code=304, headers=headers)
        return Response(served.body, media_type=served.content_type, headers=headers)

    return Starlette(routes=[Route("/images/{name}", get_image, methods=["GET", "HEAD"])])
