"""The storefront's client of the public REST API (API.md), over loopback HTTP.

The pages hold no private way into the backends: they call the same `/api/v1` a phone app
would, so the contract, its validation, authorization and rate limits apply to them too.
An expired access token is refreshed once with the refresh token (rotation), and the new
pair is remembered so the page's response can store it in the cookies.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx

TIMEOUT_SECONDS = 30.0


@dataclass
class Tokens:
    access: str
    refresh: str


@dataclass
class ApiSession:
    """One page request's view of the API: the caller's tokens and whether they changed."""

    http: httpx.AsyncClient
    tokens: Tokens | None
    renewed: bool = False
    signed_out: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    _refreshing: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        files: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """One API call; `files` makes it multipart (the image upload)."""
        sent_with = self.tokens
        answer = await self._send(method, path, json, params, headers, files)
        if answer.status_code != 401 or sent_with is None:
            return answer
        # Pages make calls concurrently: one refresh for all of them (a refresh token used
        # twice would revoke the whole family and sign the visitor out).
        async with self._refreshing:
            renewed = self.tokens is not sent_with or await self._refresh()
        if renewed and self.tokens is not None:
            answer = await self._send(method, path, json, params, headers, files)
        return answer

    async def _send(
        self,
        method: str,
        path: str,
        json: Any,
        params: dict[str, Any] | None,
        headers: dict[str, str] | None,
        files: dict[str, Any] | None = None,
    ) -> httpx.Response:
        sent = {**self.headers, **(headers or {})}
        if self.tokens is not None:
            sent["Authorization"] = f"Bearer {self.tokens.access}"
        return await self.http.request(
            method, path, json=json, params=params, headers=sent, files=files
        )

    async def _refresh(self) -> bool:
        """Rotate the pair; on failure the visitor is signed out (cookies cleared)."""
        assert self.tokens is not None
        answer = await self.http.post(
            "/api/v1/auth/refresh", json={"refresh_token": self.tokens.refresh}
        )
        if answer.status_code != 200:
            self.tokens = None
            self.signed_out = True
            return False
        body = answer.json()
        self.tokens = Tokens(body["access_token"], body["refresh_token"])
        self.renewed = True
        return True


def new_http_client(
    api_url: str, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """`transport` is for tests (a fake API); the gateway uses plain loopback HTTP."""
    return httpx.AsyncClient(base_url=api_url, timeout=TIMEOUT_SECONDS, transport=transport)
