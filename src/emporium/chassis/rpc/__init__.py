"""gRPC plumbing shared by every service: server and channel factories with the chassis
interceptors (service proofs and callers tables, identity, tracing, metrics, errors,
deadlines, retries, circuit breaker) and the standard health service. Import from the
submodules; the names below are the public API."""

from __future__ import annotations

from emporium.chassis.rpc.acl import GATEWAY, OPERATOR, CallerTable
from emporium.chassis.rpc.breaker import BreakerState, CircuitBreaker
from emporium.chassis.rpc.client import RetryPolicy, create_channel, domain_error_from_rpc
from emporium.chassis.rpc.health import HealthHandle, add_health, check_health
from emporium.chassis.rpc.identity import (
    Caller,
    TokenVerifier,
    acting_as,
    current_caller,
    current_calling_service,
    require_admin,
    require_authenticated,
    require_owner_or_admin,
    require_service,
)
from emporium.chassis.rpc.server import create_server

__all__ = [
    "GATEWAY",
    "OPERATOR",
    "BreakerState",
    "Caller",
    "CallerTable",
    "CircuitBreaker",
    "HealthHandle",
    "RetryPolicy",
    "TokenVerifier",
    "acting_as",
    "add_health",
    "check_health",
    "create_channel",
    "create_server",
    "current_caller",
    "current_calling_service",
    "domain_error_from_rpc",
    "require_admin",
    "require_authenticated",
    "require_owner_or_admin",
    "require_service",
]
