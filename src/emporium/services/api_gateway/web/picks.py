"""Recommended products (API.md `GET /api/v1/recommendations`): ids and scores from the
API, the products themselves fetched alongside (a product gone since is left out)."""

from __future__ import annotations

import asyncio
from typing import Any

from emporium.services.api_gateway.web.client import ApiSession

SHOWN = 6


async def products_by_id(api: ApiSession, ids: list[str]) -> list[dict[str, Any]]:
    answers = await asyncio.gather(*(api.call("GET", f"/api/v1/products/{i}") for i in ids))
    return [a.json() for a in answers if a.status_code == 200]


async def recommended(
    api: ApiSession, product_id: str | None = None, limit: int = SHOWN
) -> list[dict[str, Any]]:
    """For `product_id` ("bought together"), else for the caller (signed in: personalised,
    anonymous: the best sellers). A failing recommender leaves the section empty."""
    params: dict[str, Any] = {"limit": limit}
    if product_id:
        params["product_id"] = product_id
    answer = await api.call("GET", "/api/v1/recommendations", params=params)
    if answer.status_code != 200:
        return []
    ids = [str(item["product_id"]) for item in answer.json().get("items", [])]
    return await products_by_id(api, [i for i in ids if i != product_id])


async def best_sellers(api: ApiSession, limit: int = SHOWN) -> list[dict[str, Any]]:
    """What the recommender answers an anonymous visitor: the best sellers."""
    return await recommended(ApiSession(api.http, None), limit=limit)
