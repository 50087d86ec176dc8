"""gRPC channels with the reliability rules built in: deadline, retry, circuit breaker.

Every unary call made through `create_channel` gets a deadline (the caller's timeout, else
the channel default, and never later than the deadline of the call being handled), carries
the trace context, request id, caller identity and this process's service proof for the
callee (`service_auth`) in metadata, is retried with jittered
exponential backoff when the method is declared idempotent and the failure is transient, goes
through the target's circuit breaker, and is counted in `emporium_rpc_client_requests_total`.
Failures surface as `grpc.aio.AioRpcError` (turn them into the `DomainError` the server
raised with `domain_error_from_rpc`), or as `DomainError(unavailable)` when the breaker is
open. Streaming calls pass through untouched.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from emporium.chassis.backoff import Backoff
from emporium.chassis.errors import DomainError, ErrorCode, FieldError, code_from_grpc
from emporium.chassis.logging import request_id_var
from emporium.chassis.metrics import RPC_CLIENT_REQUESTS
from emporium.chassis.rpc import service_auth
from emporium.chassis.rpc.breaker import CircuitBreaker
from emporium.chassis.rpc.identity import Caller, caller_metadata, current_caller
from emporium.chassis.rpc.server import ERROR_TRAILER_KEY, incoming_deadline_var, method_label
from emporium.chassis.tracing import REQUEST_ID_HEADER, inject_metadata

DEFAULT_TIMEOUT_SECONDS = 2.0
RETRYABLE_CODES: frozenset[Any] = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}
)
IdempotentMethods = Collection[str] | Callable[[str], bool]


class RetryPolicy:
    """Which methods may be retried and how: full-jitter exponential backoff, capped, and
    never past the call's deadline.

    Only UNAVAILABLE and RESOURCE_EXHAUSTED are retried. DEADLINE_EXCEEDED is not: attempts
    share the call's one deadline, so once it is exceeded there is no time left to retry in
    (and a request that never left the client is already retried transparently by gRPC).
    """

    def __init__(
        self,
        idempotent: IdempotentMethods = (),
        *,
        max_attempts: int = 3,
        base_delay: float = 0.05,
        max_delay: float = 1.0,
    ) -> None:
        if callable(idempotent):
            self._is_idempotent = idempotent
        else:
            names = frozenset(method_label(m) for m in idempotent)
            self._is_idempotent = names.__contains__
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay

    def is_idempotent(self, method: str) -> bool:
        """`method` is `pkg.Service/Method`; a predicate is asked with that form too."""
        return bool(self._is_idempotent(method))

    def should_retry(self, method: str, code: Any, attempt: int) -> bool:
        return (
            attempt < self.max_attempts and code in RETRYABLE_CODES and self.is_idempotent(method)
        )

    def backoff(self, attempt: int) -> float:
        return Backoff(self.base_delay, 2.0, self.max_delay, jitter=1.0).delay(attempt)


class ClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Deadline, metadata, trace span, retries, breaker and metrics for unary calls."""

    def __init__(
        self,
        target: str,
        *,
        service: str,
        default_timeout: float,
        retry: RetryPolicy,
        breaker: CircuitBreaker,
        caller: Caller | None,
    ) -> None:
        self.target = target
        self.service = service or "unknown"
        self.default_timeout = default_timeout
        self.retry = retry
        self.breaker = breaker
        self.caller = caller
        self.tracer = trace.get_tracer("emporium.chassis.rpc")

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        method = method_label(client_call_details.method)
        deadline = self._deadline(client_call_details.timeout)
        with self.tracer.start_as_current_span(
            method,
            kind=SpanKind.CLIENT,
            attributes={"rpc.system": "grpc", "rpc.method": method, "server.address": self.target},
        ) as span:
            metadata = self._metadata(client_call_details.metadata, method)
            attempt = 1
            while True:
                try:
                    return await self._attempt(
                        continuation, client_call_details, request, method, metadata, deadline
                    )
                except grpc.aio.AioRpcError as exc:
                    delay = self.retry.backoff(attempt)
                    retry = self.retry.should_retry(method, exc.code(), attempt)
                    if not retry or time.monotonic() + delay >= deadline:
                        raise
                span.add_event("retry", {"attempt": attempt, "delay_s": delay})
                await asyncio.sleep(delay)
                attempt += 1

    async def _attempt(
        self,
        continuation: Callable[..., Any],
        details: Any,
        request: Any,
        method: str,
        metadata: Any,
        deadline: float,
    ) -> Any:
        try:
            self.breaker.before_call()
        except DomainError:
            RPC_CLIENT_REQUESTS.labels(self.service, method, "CIRCUIT_OPEN").inc()
            raise
        timeout = max(0.0, deadline - time.monotonic())
        call = await continuation(details._replace(timeout=timeout, metadata=metadata), request)
        try:
            await call
        except grpc.aio.AioRpcError as exc:
            self._finish(method, exc.code())
            raise
        except asyncio.CancelledError:
            self.breaker.release()
            RPC_CLIENT_REQUESTS.labels(self.service, method, "CANCELLED").inc()
            raise
        self._finish(method, grpc.StatusCode.OK)
        return call

    def _finish(self, method: str, code: Any) -> None:
        if code is grpc.StatusCode.CANCELLED:
            self.breaker.release()
        else:
            self.breaker.record(code)
        RPC_CLIENT_REQUESTS.labels(self.service, method, code.name).inc()

    def _deadline(self, timeout: float | None) -> float:
        now = time.monotonic()
        deadline = now + (timeout if timeout is not None else self.default_timeout)
        incoming = incoming_deadline_var.get()
        return min(deadline, incoming) if incoming is not None else deadline

    def _metadata(self, given: Any, method: str) -> Any:
        """The call's own metadata plus what it lacks of trace, request id, identity and
        the proof of which service calls (on every call to an Emporium service: also when
        a user's token travels with it, so the callee knows who forwards it)."""
        pairs: list[tuple[str, Any]] = list(given or ())
        present = {key.lower() for key, _ in pairs}
        extra = list(inject_metadata())
        request_id = request_id_var.get()
        if request_id:
            extra.append((REQUEST_ID_HEADER, request_id))
        extra.extend(caller_metadata(self.caller or current_caller()))
        identity, audience = service_auth.installed(), service_auth.audience_of(method)
        if identity is not None and audience is not None:
            extra.append((service_auth.SERVICE_PROOF_KEY, identity.proof_for(audience)))
        pairs.extend((k, v) for k, v in extra if k not in present)
        return grpc.aio.Metadata(*pairs)


# Reconnect quickly after a backend restarts (gRPC's default backoff grows to two minutes),
# and keep each channel's connections its own, so a probe that found a backend still
# starting cannot leave another channel's shared connection in backoff.
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.use_local_subchannel_pool", 1),
)


def create_channel(
    target: str,
    *,
    service: str = "",
    default_timeout: float = DEFAULT_TIMEOUT_SECONDS,
    idempotent: IdempotentMethods = (),
    max_attempts: int = 3,
    caller: Caller | None = None,
    breaker: CircuitBreaker | None = None,
    failure_threshold: int = 5,
    reset_timeout: float = 5.0,
    options: Sequence[tuple[str, Any]] = (),
) -> Any:
    """An insecure `grpc.aio.Channel` to `target` with the chassis client interceptor.

    `service` is the calling service's name (the `service` label of the client metrics);
    `idempotent` names the methods safe to retry, as `/pkg.Service/Method` or
    `pkg.Service/Method`, or a predicate over `pkg.Service/Method`; `caller` pins the
    identity sent on every call (default: the caller of the call being handled, see
    `identity.acting_as`). The breaker defaults to one per channel with the given threshold
    and cool-down; pass one to share it or to control its clock.
    """
    interceptor = ClientInterceptor(
        target,
        service=service,
        default_timeout=default_timeout,
        retry=RetryPolicy(idempotent, max_attempts=max_attempts),
        breaker=breaker
        or CircuitBreaker(
            target,
            service=service,
            failure_threshold=failure_threshold,
            reset_timeout=reset_timeout,
        ),
        caller=caller,
    )
    return grpc.aio.insecure_channel(
        target, options=[*CHANNEL_OPTIONS, *options], interceptors=[interceptor]
    )


def domain_error_from_rpc(exc: Any) -> DomainError:
    """The `DomainError` a failed call stands for: the one the server raised (code, message,
    reason, fields from the `emporium-error-bin` trailer) or, for transport failures, one
    built from the status code."""
    status = exc.code()
    message = exc.details() or status.name.lower().replace("_", " ")
    payload = _error_payload(exc.trailing_metadata())
    try:
        code = ErrorCode(payload.get("code", ""))
    except ValueError:
        code = code_from_grpc(status)
    fields = [
        FieldError(str(f.get("field", "")), str(f.get("message", "")))
        for f in payload.get("fields", ())
        if isinstance(f, dict)
    ]
    retry_after = payload.get("retry_after")
    return DomainError(
        message,
        code,
        str(payload.get("reason") or code.value),
        fields,
        float(retry_after) if isinstance(retry_after, int | float) else None,
    )


def _error_payload(trailing: Any) -> dict[str, Any]:
    for key, value in trailing or ():
        if key == ERROR_TRAILER_KEY:
            try:
                payload = json.loads(value)
            except (TypeError, ValueError):
                return {}
            return payload if isinstance(payload, dict) else {}
    return {}
