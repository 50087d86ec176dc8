"""One error type for every service, mapped once to gRPC and once to HTTP.

Handlers raise `DomainError` subclasses with a code; the gRPC interceptor turns the code into a
status (with field errors in trailing metadata) and the gateway turns the status into
RFC 9457 problem+json. Nothing else in the code base decides status codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import grpc


class ErrorCode(StrEnum):
    """Error categories shared by gRPC and HTTP; the value is the problem `type` suffix."""

    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    CONFLICT = "conflict"
    FAILED_PRECONDITION = "failed_precondition"
    UNAUTHENTICATED = "unauthenticated"
    PERMISSION_DENIED = "permission_denied"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    UNAVAILABLE = "unavailable"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    INTERNAL = "internal"


_GRPC: dict[ErrorCode, grpc.StatusCode] = {
    ErrorCode.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorCode.CONFLICT: grpc.StatusCode.ABORTED,
    ErrorCode.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorCode.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorCode.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.PAYLOAD_TOO_LARGE: grpc.StatusCode.OUT_OF_RANGE,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorCode.INTERNAL: grpc.StatusCode.INTERNAL,
}

_HTTP: dict[ErrorCode, int] = {
    ErrorCode.INVALID_ARGUMENT: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.ALREADY_EXISTS: 409,
    ErrorCode.CONFLICT: 409,
    ErrorCode.FAILED_PRECONDITION: 409,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.RESOURCE_EXHAUSTED: 429,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.DEADLINE_EXCEEDED: 504,
    ErrorCode.INTERNAL: 500,
}

_FROM_GRPC: dict[grpc.StatusCode, ErrorCode] = {
    grpc.StatusCode.INVALID_ARGUMENT: ErrorCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND: ErrorCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: ErrorCode.ALREADY_EXISTS,
    grpc.StatusCode.ABORTED: ErrorCode.CONFLICT,
    grpc.StatusCode.FAILED_PRECONDITION: ErrorCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNAUTHENTICATED: ErrorCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED: ErrorCode.PERMISSION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ErrorCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.OUT_OF_RANGE: ErrorCode.PAYLOAD_TOO_LARGE,
    grpc.StatusCode.UNAVAILABLE: ErrorCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ErrorCode.DEADLINE_EXCEEDED,
}


@dataclass(frozen=True)
class FieldError:
    """One invalid field: `field` is a dotted path (`items.0.quantity`)."""

    field: str
    message: str


@dataclass
class DomainError(Exception):
    """Base of every expected failure; `reason` is a stable machine-readable detail
    (e.g. `out_of_stock`) that clients may switch on."""

    message: str
    code: ErrorCode = ErrorCode.INTERNAL
    reason: str = ""
    fields: list[FieldError] = field(default_factory=list)
    # Seconds until trying again can succeed (a throttle's window): HTTP `Retry-After`.
    retry_after: float | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def grpc_status(self) -> grpc.StatusCode:
        return _GRPC[self.code]

    @property
    def http_status(self) -> int:
        return _HTTP[self.code]


def invalid(message: str, *fields: FieldError) -> DomainError:
    return DomainError(message, ErrorCode.INVALID_ARGUMENT, "invalid_argument", list(fields))


def not_found(message: str) -> DomainError:
    return DomainError(message, ErrorCode.NOT_FOUND, "not_found")


def conflict(message: str, reason: str = "conflict") -> DomainError:
    return DomainError(message, ErrorCode.CONFLICT, reason)


def unauthenticated(message: str = "authentication required") -> DomainError:
    return DomainError(message, ErrorCode.UNAUTHENTICATED, "unauthenticated")


def permission_denied(message: str = "not allowed") -> DomainError:
    return DomainError(message, ErrorCode.PERMISSION_DENIED, "permission_denied")


def code_from_grpc(status: grpc.StatusCode) -> ErrorCode:
    """The error code a gRPC status stands for (unknown statuses are internal errors)."""
    return _FROM_GRPC.get(status, ErrorCode.INTERNAL)


def http_status_for(code: ErrorCode) -> int:
    return _HTTP[code]
