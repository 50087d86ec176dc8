"""Cursor pagination for the pages: the API gives only `next_cursor`, so the page carries
the cursors it came through (`prev=`, repeated) to offer a "Previous" link and a page number.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.requests import Request

MAX_TRAIL = 50  # a longer trail is cut: "Previous" then starts over from the first page


@dataclass
class Pager:
    """Where a listing page is: its cursor and the cursors of the pages before it."""

    cursor: str
    trail: list[str]

    @classmethod
    def of(cls, request: Request) -> Pager:
        trail = request.query_params.getlist("prev")[-MAX_TRAIL:]
        return cls(request.query_params.get("cursor", ""), trail)

    @property
    def number(self) -> int:
        return len(self.trail) + 2 if self.cursor else 1

    def links(
        self, path: str, params: dict[str, str], next_cursor: str | None
    ) -> dict[str, str | int | None]:
        """The `next`/`prev` URLs keeping the page's other `params` (filters, sort)."""
        kept = [(k, v) for k, v in params.items() if v and k not in ("cursor", "prev")]
        next_url = prev_url = None
        if next_cursor:
            back = [*self.trail, self.cursor] if self.cursor else []
            query = [*kept, ("cursor", next_cursor), *(("prev", c) for c in back)]
            next_url = f"{path}?{urlencode(query)}"
        if self.cursor:
            earlier = self.trail[:-1]
            previous = self.trail[-1] if self.trail else ""
            query = list(kept)
            if previous:
                query += [("cursor", previous), *(("prev", c) for c in earlier)]
            prev_url = f"{path}?{urlencode(query)}" if query else path
        return {"next": next_url, "prev": prev_url, "number": self.number}
