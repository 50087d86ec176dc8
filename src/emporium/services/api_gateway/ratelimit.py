"""In-process token-bucket rate limiting: per client IP for every route, and on login
stricter, per account (whatever the address) and per address (whatever the account).

Each gateway replica keeps its own buckets, so the effective limit scales with the number
of replicas; that is fine for abuse protection (auth-service also throttles failed logins
per account, and that count is shared through its kv store). A production deployment that
needs one global budget would keep the buckets in Redis (the kv port) instead.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from emporium.chassis.config import ConfigError
from emporium.services.api_gateway.problems import problem, retry_after_header


@dataclass(frozen=True)
class RateLimits:
    """Budgets: `*_rate` tokens per second refill a bucket holding at most `*_burst`."""

    client_rate: float = 50.0
    client_burst: int = 100
    login_rate: float = 10 / 60  # ten attempts a minute per account, after the burst
    login_burst: int = 10
    login_address_rate: float = 30 / 60  # thirty a minute per client address, after the burst
    login_address_burst: int = 30

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RateLimits:
        """`EMPORIUM_GATEWAY_RATE_LIMIT` (requests/s per client) and
        `EMPORIUM_GATEWAY_RATE_BURST` override the defaults; a bad value is a ConfigError."""
        limits = cls()
        rate = environ.get("EMPORIUM_GATEWAY_RATE_LIMIT")
        burst = environ.get("EMPORIUM_GATEWAY_RATE_BURST")
        try:
            if rate is not None:
                limits = replace(limits, client_rate=float(rate))
            if burst is not None:
                limits = replace(limits, client_burst=int(burst))
        except ValueError:
            raise ConfigError(
                "EMPORIUM_GATEWAY_RATE_LIMIT / EMPORIUM_GATEWAY_RATE_BURST: not a number"
            ) from None
        if limits.client_rate <= 0 or limits.client_burst < 1:
            raise ConfigError("EMPORIUM_GATEWAY_RATE_LIMIT / _BURST: must be positive")
        return limits


class TokenBucketLimiter:
    """One token bucket per key. `acquire(key)` takes a token and returns 0.0, or returns how
    many seconds the caller must wait for one (and takes nothing).

    The table is bounded (least recently used keys are dropped first): a dropped key simply
    starts again with a full bucket, which errs on the side of letting a client through.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def acquire(self, key: str) -> float:
        now = self._clock()
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait


def client_ip(scope: dict[str, Any]) -> str:
    """The client address: the peer, or the forwarded client when the peer is a trusted
    proxy (`forwarded.ForwardedClientMiddleware` has set it by the time this runs)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class ClientRateLimitMiddleware:
    """Pure ASGI middleware answering 429 problem+json with `Retry-After` once a client IP
    has spent its budget."""

    def __init__(self, app: Any, limiter: TokenBucketLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wait = self.limiter.acquire(client_ip(scope))
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        response = problem(
            429,
            "too many requests",
            "request rate limit exceeded for this client; retry later",
            type_="https://emporium.dev/problems/rate_limited",
            headers=retry_after_header(wait),
        )
        await response(scope, receive, send)
