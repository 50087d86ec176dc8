"""Refuse oversized request bodies before they are read (413 problem+json).

Only the declared `Content-Length` is checked: that stops a client from making the gateway
spool a huge multipart upload to disk just to reject it. The image route also counts the
bytes it actually reads (chunked uploads), see `products.read_limited`.
"""

from __future__ import annotations

from typing import Any

from emporium.services.api_gateway.problems import TYPE_BASE, problem

# A 10 MiB image plus the multipart envelope.
MAX_BODY_BYTES = 10 * 1024 * 1024 + 64 * 1024


class BodySizeLimitMiddleware:
    def __init__(self, app: Any, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self._declared_length(scope) > self.max_bytes:
            response = problem(
                413,
                "payload too large",
                f"request bodies are limited to {self.max_bytes} bytes",
                type_=TYPE_BASE + "too_large",
                reason="too_large",
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _declared_length(scope: dict[str, Any]) -> int:
        for key, value in scope.get("headers", ()):
            if key.lower() == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0
        return 0
