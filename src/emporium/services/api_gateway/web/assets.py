"""Static files with fingerprinted URLs: `/static/shop.css?v=<sha256 prefix>`.

A page always names the current content hash, so the file can be cached for a year
(`immutable`); a new deployment changes the hash and so the URL. Nothing is loaded from
outside the repository.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

STATIC_DIR = Path(__file__).parent / "static"
LONG_CACHE = "public, max-age=31536000, immutable"
MEDIA_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


class Assets:
    def __init__(self, directory: Path = STATIC_DIR) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        for path in sorted(directory.iterdir()):
            if path.suffix in MEDIA_TYPES:
                content = path.read_bytes()
                self.files[path.name] = (content, hashlib.sha256(content).hexdigest()[:16])

    def url(self, name: str) -> str:
        return f"/static/{name}?v={self.files[name][1]}"

    def response(self, request: Request, name: str) -> Response | None:
        """The file, long-cached only when asked for by its current hash (else no-cache)."""
        found = self.files.get(name)
        if found is None:
            return None
        content, digest = found
        cache = LONG_CACHE if request.query_params.get("v") == digest else "no-cache"
        headers = {"Cache-Control": cache, "ETag": f'"{digest}"'}
        if request.headers.get("if-none-match") == f'"{digest}"':
            return Response(status_code=304, headers=headers)
        media = MEDIA_TYPES[Path(name).suffix]
        return Response(content, media_type=media, headers=headers)
