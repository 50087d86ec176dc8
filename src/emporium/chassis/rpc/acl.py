"""Which services may call which method: each backend declares it, the chassis enforces it.

Every backend has a `callers.py` next to its `rpc.py` with one `CallerTable` per gRPC
service it serves: for each method, the identities (`service_keys.IDENTITIES`: the
catalog's service names and `operator`) whose calls it accepts. The server interceptor
looks the method up after the caller proved who it is (`service_auth`):

- a method of the standard health service is open to anyone (probes carry no proof);
- no proof: UNAUTHENTICATED;
- a proven caller the method does not name: PERMISSION_DENIED;
- a method the table does not declare: PERMISSION_DENIED for everybody. A new RPC is
  unreachable until someone decides who may call it (and a test fails until they do).

The user a call acts for (a bearer token) is authorized by the handler, as before; this
table answers the other question, which *service* may ask at all: only order may make
payment move money, whatever token the gateway or cdn would forward.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from emporium.chassis.errors import permission_denied, unauthenticated
from emporium.chassis.rpc.service_keys import IDENTITIES, OPERATOR

GATEWAY: Final = "api_gateway"
__all__ = ["GATEWAY", "OPERATOR", "PUBLIC_METHODS", "AccessControl", "CallerTable"]
PUBLIC_METHODS: Final = frozenset(
    {"grpc.health.v1.Health/Check", "grpc.health.v1.Health/Watch", "grpc.health.v1.Health/List"}
)


@dataclass(frozen=True)
class CallerTable:
    """The accepted callers of every method of one gRPC service (`service` is its full
    proto name, e.g. `emporium.payment.v1.PaymentService`)."""

    service: str
    methods: Mapping[str, frozenset[str]]

    @classmethod
    def of(cls, descriptor: Any, methods: Mapping[str, Iterable[str]]) -> CallerTable:
        """A table for the service `descriptor` (`pb2.DESCRIPTOR.services_by_name[...]`);
        a method the service does not have, or a caller nobody is called, is a ValueError
        at import time: a typo must not pass for a rule."""
        known = {m.name for m in descriptor.methods}
        unknown = sorted(set(methods) - known)
        if unknown:
            raise ValueError(f"{descriptor.full_name} has no method {', '.join(unknown)}")
        table = {name: frozenset(callers) for name, callers in methods.items()}
        for name, callers in table.items():
            strangers = sorted(callers - IDENTITIES)
            if strangers:
                raise ValueError(f"{descriptor.full_name}/{name}: unknown caller {strangers}")
        return cls(str(descriptor.full_name), table)

    def undeclared(self, descriptor: Any) -> list[str]:
        """Methods of `descriptor` this table leaves out (refused to everybody)."""
        return sorted(m.name for m in descriptor.methods if m.name not in self.methods)


class AccessControl:
    """The tables of one server, by full method name (`pkg.Service/Method`)."""

    def __init__(self, tables: Iterable[CallerTable]) -> None:
        self.tables = tuple(tables)
        self._rules: dict[str, frozenset[str]] = {}
        self._services: set[str] = set()
        for table in self.tables:
            self._services.add(table.service)
            for method, callers in table.methods.items():
                self._rules[f"{table.service}/{method}"] = callers

    def covers(self, service: str) -> bool:
        return service in self._services

    def check(self, method: str, caller: str | None) -> None:
        """Return if `caller` (the proven identity, None without a proof) may call
        `method`, else raise as the module docstring says."""
        if method in PUBLIC_METHODS:
            return
        if caller is None:
            raise unauthenticated("a service proof is required (x-emporium-service-proof)")
        accepted = self._rules.get(method)
        if accepted is None:
            raise permission_denied(f"{method} accepts no caller (not in its callers table)")
        if caller not in accepted:
            raise permission_denied(f"{method} does not accept calls from {caller}")
