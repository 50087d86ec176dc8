"""Who is calling: the caller identity carried in gRPC metadata and the authorization helpers.

The gateway authenticates the end user and forwards the identity to backends in metadata
(`x-emporium-user-id`, `x-emporium-roles`, and the original `authorization: Bearer <token>`);
backends authorize with `require_owner_or_admin(...)` and friends. The server interceptor
puts the resolved `Caller` in a context variable for the duration of one call, and the client
interceptor forwards the current caller on outgoing calls, so a chain gateway -> order ->
payment keeps acting for the same user.

Two questions, two answers. *Which service* is calling is proven on every call by the
caller's own signed proof (`service_auth`) and checked against the callee's table
(`acl`); `current_calling_service()` tells a handler. *For whom* it calls is this module:

Trust rule. Every backend's server has a `TokenVerifier` (JWKS). On such a server:
- a bearer token is verified and the identity it yields wins over the forwarded headers;
- a call without a token that claims an identity must be the system identity of the very
  service that proved itself (`Caller.system("order")` from order, with order's proof),
  else it is refused as UNAUTHENTICATED: identity headers alone prove nothing, anyone
  reaching the port could write them, and no service can claim to be another;
- a call claiming nothing is anonymous.
A server without a verifier (in-process tests of one servicer) trusts the headers as sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Protocol

from emporium.chassis.errors import permission_denied, unauthenticated

USER_ID_KEY = "x-emporium-user-id"
ROLES_KEY = "x-emporium-roles"
AUTHORIZATION_KEY = "authorization"
ADMIN_ROLE = "admin"
SYSTEM_ROLE = "system"
SYSTEM_PREFIX = "service:"


@dataclass(frozen=True)
class Caller:
    """The identity a call acts for; an empty `user_id` means anonymous."""

    user_id: str
    roles: frozenset[str] = frozenset()
    token: str | None = None

    @classmethod
    def anonymous(cls) -> Caller:
        return cls("")

    @classmethod
    def system(cls, service: str) -> Caller:
        """A service acting on its own behalf (a consumer, a saga step): trusted like an
        admin for authorization, and distinguishable in audit logs (`service:<name>`)."""
        return cls(f"{SYSTEM_PREFIX}{service}", frozenset({SYSTEM_ROLE}))

    @property
    def is_authenticated(self) -> bool:
        return bool(self.user_id)

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles

    @property
    def is_system(self) -> bool:
        return SYSTEM_ROLE in self.roles


class TokenVerifier(Protocol):
    """Turns a bearer token into a Caller; raises DomainError(unauthenticated) if invalid."""

    async def verify(self, token: str) -> Caller: ...


_caller_var: ContextVar[Caller | None] = ContextVar("emporium_caller", default=None)
_calling_service_var: ContextVar[str | None] = ContextVar("emporium_calling_service", default=None)


def current_calling_service() -> str | None:
    """The service (identity) that proved it made the call being handled; None outside a
    call, or on a server that enforces no callers table and got no proof."""
    return _calling_service_var.get()


def set_calling_service(service: str | None) -> Token[str | None]:
    return _calling_service_var.set(service)


def reset_calling_service(token: Token[str | None]) -> None:
    _calling_service_var.reset(token)


def current_caller() -> Caller:
    """The caller of the call being handled (anonymous outside any call)."""
    return _caller_var.get() or Caller.anonymous()


def set_caller(caller: Caller) -> Token[Caller | None]:
    """Make `caller` current; returns a token for `reset_caller` (used by interceptors)."""
    return _caller_var.set(caller)


def reset_caller(token: Token[Caller | None]) -> None:
    _caller_var.reset(token)


@contextlib.contextmanager
def acting_as(caller: Caller) -> Iterator[Caller]:
    """Run a block as `caller`, e.g. `with acting_as(Caller.system("notification")):` in a
    consumer, or the gateway acting for the authenticated user; outgoing calls carry it."""
    token = _caller_var.set(caller)
    try:
        yield caller
    finally:
        _caller_var.reset(token)


def caller_metadata(caller: Caller) -> list[tuple[str, str]]:
    """Metadata pairs forwarding `caller` (nothing for an anonymous caller)."""
    if not caller.is_authenticated:
        return []
    pairs = [(USER_ID_KEY, caller.user_id), (ROLES_KEY, ",".join(sorted(caller.roles)))]
    if caller.token:
        pairs.append((AUTHORIZATION_KEY, f"Bearer {caller.token}"))
    return pairs


def system_service(caller: Caller) -> str:
    """`order` for `Caller.system("order")`."""
    return caller.user_id.removeprefix(SYSTEM_PREFIX)


def bearer_token(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The token of an `authorization: Bearer <token>` entry, if any."""
    for key, value in metadata:
        if key.lower() == AUTHORIZATION_KEY and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def caller_from_metadata(metadata: Iterable[tuple[str, str | bytes]]) -> Caller:
    """The identity forwarded in metadata headers, trusted as is (see the module docstring)."""
    pairs = [(k.lower(), v) for k, v in metadata if isinstance(v, str)]
    values = dict(pairs)
    user_id = values.get(USER_ID_KEY, "").strip()
    if not user_id:
        return Caller.anonymous()
    roles = frozenset(r.strip() for r in values.get(ROLES_KEY, "").split(",") if r.strip())
    return Caller(user_id, roles, bearer_token(pairs))


async def resolve_caller(
    metadata: Iterable[tuple[str, str | bytes]],
    verifier: TokenVerifier | None,
    calling_service: str | None = None,
) -> Caller:
    """The caller of an incoming call under the trust rule in the module docstring;
    `calling_service` is the identity whose service proof came with the call, if any."""
    pairs = list(metadata)
    if verifier is None:
        return caller_from_metadata(pairs)
    token = bearer_token(pairs)
    if token is not None:
        return await verifier.verify(token)
    claimed = caller_from_metadata(pairs)
    if not claimed.is_authenticated:
        return claimed
    return proven_system_caller(claimed, calling_service)


def proven_system_caller(claimed: Caller, calling_service: str | None) -> Caller:
    """`claimed` if it is the system identity of the service that proved itself, else
    refuse (UNAUTHENTICATED)."""
    if not claimed.is_system or calling_service is None:
        raise unauthenticated("an identity without a token needs a service proof")
    if claimed.user_id != f"{SYSTEM_PREFIX}{calling_service}":
        raise unauthenticated("the service proof names another service")
    return Caller.system(calling_service)


def require_authenticated() -> Caller:
    caller = current_caller()
    if not caller.is_authenticated:
        raise unauthenticated()
    return caller


def require_admin() -> Caller:
    """The current caller if it is an admin (or a system caller), else raise."""
    caller = require_authenticated()
    if not (caller.is_admin or caller.is_system):
        raise permission_denied("admin role required")
    return caller


def require_service(*services: str) -> Caller:
    """The current caller if it is one of `services` acting on its own behalf, else
    PERMISSION_DENIED: e.g. money moves only when order-service itself asks, never for a
    user token, however privileged. (On a verifying server a system identity exists only
    with that service's own proof: `proven_system_caller`.)"""
    caller = require_authenticated()
    if not caller.is_system or system_service(caller) not in services:
        raise permission_denied(f"only {', '.join(services)} may do this")
    return caller


def require_owner_or_admin(owner_id: str) -> Caller:
    """The current caller if it owns the resource or is an admin (or system), else raise."""
    caller = require_authenticated()
    if caller.user_id != owner_id and not (caller.is_admin or caller.is_system):
        raise permission_denied()
    return caller
