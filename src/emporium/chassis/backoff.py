"""Exponential backoff with jitter: the one retry-delay rule of the platform.

Used wherever something is tried again later: gRPC retries of idempotent calls, event
handlers, crashed background loops, saga steps and payment-provider intents. Jitter spreads
the retries of many callers so that a dependency coming back is not hit by all at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delay before retry n (1-based): initial * multiplier**(n-1), capped, +-jitter.

    `jitter` is a fraction of the delay drawn uniformly in [-jitter, +jitter]; 1.0 gives
    "full jitter" (anywhere between 0 and twice the delay)."""

    initial: float = 0.2
    multiplier: float = 2.0
    maximum: float = 5.0
    jitter: float = 0.2

    def delay(self, retry: int) -> float:
        exponent = min(max(retry - 1, 0), 64)  # no float overflow for very old retries
        base = min(self.initial * self.multiplier**exponent, self.maximum)
        return max(base * (1 + random.uniform(-self.jitter, self.jitter)), 0.0)
