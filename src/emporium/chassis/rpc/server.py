"""The gRPC server every service runs, with the one interceptor that makes calls observable.

Per unary call the interceptor: checks which service is calling (its signed proof,
`service_auth`) against the method's accepted callers (`acl`, when the server has tables:
every service process does), resolves the user it calls for (see `identity`), continues the caller's
trace in a SERVER span, sets the request id for the logs, remembers the incoming deadline
(so outgoing calls made while handling it never outlive it), counts and times the call, and
maps failures to a status exactly once: `DomainError` -> its code, with reason and field
errors as JSON in the `emporium-error-bin` trailer so `domain_error_from_rpc` can rebuild it
on the client; pydantic `ValidationError` -> INVALID_ARGUMENT with fields; anything else ->
INTERNAL with a generic message (the traceback goes to the log, never to the caller).
Streaming handlers pass through untouched.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import ValidationError

from emporium.chassis.errors import DomainError, ErrorCode, FieldError
from emporium.chassis.logging import request_id_var
from emporium.chassis.metrics import RPC_LATENCY, RPC_REQUESTS
from emporium.chassis.rpc import service_auth
from emporium.chassis.rpc.acl import AccessControl, CallerTable
from emporium.chassis.rpc.identity import (
    TokenVerifier,
    reset_caller,
    reset_calling_service,
    resolve_caller,
    set_caller,
    set_calling_service,
)
from emporium.chassis.tracing import REQUEST_ID_HEADER, extract_metadata, new_request_id

log = logging.getLogger("emporium.rpc.server")

ERROR_TRAILER_KEY = "emporium-error-bin"
INTERNAL_MESSAGE = "internal error"

# Absolute `time.monotonic()` deadline of the incoming call being handled, if it has one.
incoming_deadline_var: ContextVar[float | None] = ContextVar(
    "emporium_incoming_deadline", default=None
)


def within_deadline(budget: float, margin: float) -> float:
    """`budget` seconds, but never so long that the call being handled misses its deadline:
    what is left of it minus `margin` (the time to record the answer and reply); 0 when
    nothing is left. A handler that waits for work gives up before its caller does, so it
    answers with what it has instead of the caller seeing DEADLINE_EXCEEDED."""
    deadline = incoming_deadline_var.get()
    if deadline is None:
        return budget
    return max(0.0, min(budget, deadline - time.monotonic() - margin))


def method_label(method: str | bytes) -> str:
    """`/pkg.Service/Method` -> `pkg.Service/Method` (the span name and metric label)."""
    name = method.decode() if isinstance(method, bytes) else method
    return name.lstrip("/")


def error_trailer(err: DomainError) -> tuple[tuple[str, bytes], ...]:
    """The trailing metadata carrying what the status code alone loses."""
    payload: dict[str, Any] = {
        "code": err.code.value,
        "reason": err.reason,
        "fields": [{"field": f.field, "message": f.message} for f in err.fields],
    }
    if err.retry_after is not None:
        payload["retry_after"] = err.retry_after
    return ((ERROR_TRAILER_KEY, json.dumps(payload).encode()),)


def validation_error(exc: ValidationError) -> DomainError:
    fields = [FieldError(".".join(str(part) for part in e["loc"]), e["msg"]) for e in exc.errors()]
    return DomainError("invalid request", ErrorCode.INVALID_ARGUMENT, "invalid_argument", fields)


class ObservingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps every unary-unary handler in `_handle` (identity, trace, metrics, errors)."""

    def __init__(
        self,
        service: str,
        verifier: TokenVerifier | None = None,
        access: AccessControl | None = None,
    ) -> None:
        self.service = service
        self.verifier = verifier
        self.access = access
        self.tracer = trace.get_tracer("emporium.chassis.rpc")

    async def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = method_label(handler_call_details.method)
        behavior = handler.unary_unary

        async def handle(request: Any, context: Any) -> Any:
            return await self._handle(method, behavior, request, context)

        return grpc.unary_unary_rpc_method_handler(
            handle,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    async def _handle(
        self, method: str, behavior: Callable[..., Any], request: Any, context: Any
    ) -> Any:
        metadata: Sequence[tuple[str, Any]] = tuple(context.invocation_metadata() or ())
        forwarded_id = next((v for k, v in metadata if k == REQUEST_ID_HEADER), None)
        remaining = context.time_remaining()
        deadline = time.monotonic() + remaining if remaining is not None else None
        id_token = request_id_var.set(new_request_id(forwarded_id))
        deadline_token = incoming_deadline_var.set(deadline)
        started = time.perf_counter()
        code: Any = grpc.StatusCode.UNKNOWN
        try:
            with self.tracer.start_as_current_span(
                method,
                context=extract_metadata(metadata),
                kind=SpanKind.SERVER,
                attributes={"rpc.system": "grpc", "rpc.method": method},
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    result = await self._call(method, behavior, request, context, metadata)
                    code = _status_of(context) or grpc.StatusCode.OK
                    return result
                except grpc.aio.AbortError:  # the servicer aborted with its own status
                    code = _status_of(context) or grpc.StatusCode.UNKNOWN
                    raise
                except asyncio.CancelledError:
                    code = grpc.StatusCode.CANCELLED
                    raise
                except Exception as exc:
                    err = self._to_domain_error(method, exc)
                    code = err.grpc_status
                    await context.abort(code, err.message, error_trailer(err))
                finally:
                    span.set_attribute("rpc.grpc.status_code", int(code.value[0]))
                    if code in _SERVER_FAULTS:
                        span.set_status(Status(StatusCode.ERROR, code.name))
                    # Per call at DEBUG (EMPORIUM_LOG_LEVEL=DEBUG), inside the span: with it,
                    # one request's trace id finds its line in every service it went through.
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug(
                            "rpc handled",
                            extra={
                                "rpc_method": method,
                                "code": code.name,
                                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                            },
                        )
        finally:
            RPC_REQUESTS.labels(self.service, method, code.name).inc()
            RPC_LATENCY.labels(self.service, method).observe(time.perf_counter() - started)
            incoming_deadline_var.reset(deadline_token)
            request_id_var.reset(id_token)

    async def _call(
        self,
        method: str,
        behavior: Callable[..., Any],
        request: Any,
        context: Any,
        metadata: Iterable[tuple[str, Any]],
    ) -> Any:
        calling = service_auth.proven_caller(metadata, self.service)
        if self.access is not None:
            self.access.check(method, calling)
        caller = await resolve_caller(metadata, self.verifier, calling)
        service_token = set_calling_service(calling)
        caller_token = set_caller(caller)
        try:
            if inspect.iscoroutinefunction(behavior):
                return await behavior(request, context)
            # A synchronous servicer runs in a thread (with this call's context variables).
            result = await asyncio.to_thread(functools.partial(behavior, request, context))
            return await result if inspect.isawaitable(result) else result
        finally:
            reset_caller(caller_token)
            reset_calling_service(service_token)

    def _to_domain_error(self, method: str, exc: Exception) -> DomainError:
        if isinstance(exc, DomainError):
            if exc.code in (ErrorCode.INTERNAL, ErrorCode.UNAVAILABLE):
                log.warning("rpc failed", extra={"rpc_method": method, "code": exc.code.value})
            return exc
        if isinstance(exc, ValidationError):
            return validation_error(exc)
        log.exception("unhandled error in rpc", extra={"rpc_method": method})
        return DomainError(INTERNAL_MESSAGE, ErrorCode.INTERNAL, "internal")


_SERVER_FAULTS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.DATA_LOSS,
    }
)


def _status_of(context: Any) -> Any:
    """The status the servicer set with `set_code`/`abort`, if any."""
    code = context.code()
    if code is None or isinstance(code, grpc.StatusCode):
        return code
    return next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)


def create_server(
    service: str,
    verifier: TokenVerifier | None = None,
    *,
    callers: Iterable[CallerTable] | None = None,
    max_workers: int | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> Any:
    """A `grpc.aio.Server` with the observing interceptor.

    `service` is also the audience the callers' proofs must name. With `callers` (the
    service's `callers.py` tables; the runtime always passes them) every call must come
    from a proven identity the method accepts; without (tests of one servicer) proofs are
    checked when sent but nothing is required.

    `SO_REUSEPORT` is off, so binding a port another process holds fails (`add_insecure_port`
    returns 0) instead of silently sharing it. `max_workers` sizes the thread pool used by
    synchronous (non-async) servicers.
    """
    pool = ThreadPoolExecutor(max_workers) if max_workers else None
    return grpc.aio.server(
        migration_thread_pool=pool,
        interceptors=[
            ObservingInterceptor(
                service, verifier, None if callers is None else AccessControl(callers)
            )
        ],
        options=[("grpc.so_reuseport", 0), *options],
    )
