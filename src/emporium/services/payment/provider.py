"""The built-in sandbox payment provider (API.md "Sandbox payment tokens").

An adapter, like a real provider's client would be: the handler calls it outside any
transaction and records what it answered. `tok_timeout` hangs longer than any caller's
deadline; the gRPC call that waits on it is cancelled when its deadline passes, and without
a caller (or with a generous one) the handler's own `provider_timeout` ends the wait. Either
way the payment stays PENDING (outcome unknown) until the saga voids it, so a late answer can
never turn into a second charge.

`calls` is the provider's own ledger of capture requests (one entry per order id sent), the
thing "charged at most once" is about.
"""

from __future__ import annotations

import asyncio
import logging

from emporium.services.payment.domain import (
    Payment,
    ProviderResult,
    SandboxBehaviour,
    sandbox_result,
    sandbox_token,
)

log = logging.getLogger(__name__)

DEFAULT_HANG_SECONDS = 60.0


class SandboxProvider:
    """Answers from the token alone; keeps a ledger of what it was asked to do."""

    def __init__(self, hang_seconds: float = DEFAULT_HANG_SECONDS) -> None:
        self.hang_seconds = hang_seconds
        self.calls: list[str] = []
        self.reversals: list[str] = []
        self.refunds: list[str] = []

    async def charge(self, payment: Payment) -> tuple[ProviderResult, str | None]:
        """Capture `payment`; the result and, for a decline, the provider's reason."""
        token = sandbox_token(payment.token)
        self.calls.append(payment.order_id)
        if token.behaviour is SandboxBehaviour.HANG:
            await asyncio.sleep(self.hang_seconds)
        return sandbox_result(token), token.decline_reason

    async def reverse(self, payment: Payment) -> None:
        """Give back a capture we no longer want (approved after the saga gave up)."""
        self.reversals.append(payment.order_id)
        log.info("sandbox capture reversed", extra={"order_id": payment.order_id})

    async def refund(self, payment: Payment) -> None:
        self.refunds.append(payment.order_id)
        log.info("sandbox refund", extra={"order_id": payment.order_id})
