"""The payment provider's client: an adapter over its HTTP API (the built-in sandbox,
`emporium.sandbox.payments`, or a real provider with the same shape).

Every call has a deadline. What comes back is either the provider's answer about a payment
(`ProviderAnswer`), a definite refusal (`ProviderRefused`: 4xx, nothing was done), or
`ProviderUnavailable`: a timeout, a dropped connection or a 5xx, after which the outcome is
unknown and the caller keeps its intent and asks again later. The payment id is sent as the
idempotency key, so asking again is always safe.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import httpx

from emporium.services.payment.domain import Payment, ProviderAnswer, ProviderStatus

log = logging.getLogger(__name__)

DEFAULT_URL: Final = "http://127.0.0.1:9070"
URL_VAR: Final = "EMPORIUM_PAYMENT_PROVIDER_URL"
DEFAULT_TIMEOUT_SECONDS: Final = 5.0


class ProviderUnavailable(Exception):
    """No usable answer: the operation may or may not have happened."""


class ProviderRefused(Exception):
    """A definite "no" with nothing done (unknown token, key reused with other details)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _answer(data: Any) -> ProviderAnswer:
    try:
        return ProviderAnswer(ProviderStatus(data["status"]), data.get("reason"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ProviderUnavailable(f"unreadable provider answer: {data!r}") from exc


class HttpPaymentProvider:
    """One pooled HTTP client to the provider; closed at shutdown."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def _send(
        self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        try:
            response = await self._client.request(
                method, path, timeout=timeout or self.timeout, **kwargs
            )
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"{method} {path}: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise ProviderUnavailable(f"{method} {path}: HTTP {response.status_code}")
        return response

    @staticmethod
    def _refused(response: httpx.Response) -> ProviderRefused:
        try:
            body = response.json()
        except ValueError:
            body = {}
        code = str(body.get("error") or f"http_{response.status_code}")
        return ProviderRefused(response.status_code, code, str(body.get("message", code)))

    async def token_known(self, token: str) -> bool:
        """Whether the provider accepts `token` (no side effect)."""
        response = await self._send("GET", f"/v1/tokens/{token}")
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise self._refused(response)
        return True

    async def charge(self, payment: Payment, timeout: float | None = None) -> ProviderAnswer:
        """Authorise and capture `payment` once (its id is the idempotency key)."""
        response = await self._send(
            "POST",
            "/v1/payments",
            timeout=timeout,
            headers={"Idempotency-Key": payment.id},
            json={
                "amount_minor": payment.amount_minor,
                "currency": payment.currency,
                "token": payment.token,
                "reference": payment.order_id,
            },
        )
        if response.status_code != 200:
            raise self._refused(response)
        return _answer(response.json())

    async def lookup(self, payment: Payment) -> ProviderAnswer | None:
        """The provider's record of the payment; None when it never received the charge."""
        response = await self._send("GET", f"/v1/payments/{payment.id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._refused(response)
        return _answer(response.json())

    async def void(self, payment: Payment) -> ProviderAnswer:
        """Make sure nothing is taken: cancels a charge in progress, reverses a capture, and
        fences a key the provider has not seen yet."""
        response = await self._send("POST", f"/v1/payments/{payment.id}/void")
        if response.status_code != 200:
            raise self._refused(response)
        return _answer(response.json())

    async def refund(self, payment: Payment) -> ProviderAnswer:
        response = await self._send("POST", f"/v1/payments/{payment.id}/refund")
        if response.status_code != 200:
            raise self._refused(response)
        return _answer(response.json())
