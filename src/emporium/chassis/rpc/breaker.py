"""A client-side circuit breaker per target, so a failing dependency fails fast.

Without it, every caller of a dead or overloaded service waits for its full deadline and
the backlog of waiting calls spreads the outage upstream. After `failure_threshold`
consecutive failures (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL: the signs of an unhealthy
server, not of a bad request) the breaker opens and calls fail at once with
`DomainError(unavailable, reason="circuit_open")`; after `reset_timeout` seconds one probe
call is let through (half-open): success closes the breaker, failure opens it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import grpc

from emporium.chassis.errors import DomainError, ErrorCode
from emporium.chassis.metrics import CIRCUIT_STATE

FAILURE_CODES: frozenset[Any] = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL}
)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Closed -> open after N consecutive failures -> half-open (one probe) after a
    cool-down. Not thread-safe by design: one breaker lives on one event loop."""

    def __init__(
        self,
        target: str,
        *,
        service: str = "",
        failure_threshold: int = 5,
        reset_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._gauge = CIRCUIT_STATE.labels(service or "unknown", target)
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._gauge.set(0)

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker whose cool-down is over reports half-open)."""
        if self._state is BreakerState.OPEN and self._cooled_down():
            return BreakerState.HALF_OPEN
        return self._state

    def before_call(self) -> None:
        """Admit a call or raise `DomainError(unavailable)` without touching the network."""
        if self._state is BreakerState.CLOSED:
            return
        if self._state is BreakerState.OPEN and self._cooled_down():
            self._state = BreakerState.HALF_OPEN
            self._probe_in_flight = False
        if self._state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return
        raise DomainError(
            f"{self.target} is unavailable (circuit open)",
            ErrorCode.UNAVAILABLE,
            "circuit_open",
        )

    def record(self, code: Any) -> None:
        """Account for a finished call by its gRPC status code."""
        if code in FAILURE_CODES:
            self.record_failure()
        else:
            self.record_success()

    def record_success(self) -> None:
        if self._state is BreakerState.OPEN:
            return  # a straggler that started before the breaker opened proves little
        self._failures = 0
        self._probe_in_flight = False
        self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold
        ):
            self._probe_in_flight = False
            self._opened_at = self._clock()
            self._set(BreakerState.OPEN)

    def release(self) -> None:
        """A probe ended without a verdict (cancelled): let the next call probe."""
        self._probe_in_flight = False

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self.reset_timeout

    def _set(self, state: BreakerState) -> None:
        self._state = state
        self._gauge.set(0 if state is BreakerState.CLOSED else 1)
