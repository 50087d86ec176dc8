"""The twelve services and their well-known ports in the embedded profile (DESIGN.md).

The gRPC port of a backend is fixed here; its HTTP port (metrics, health, and for cdn the
image bytes) is 9000 + the last two digits of the gRPC port (9051..9061). The gateway
serves REST on 8080 and its metrics on the same port.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceInfo:
    """A service's name (`order`), its import package and its default ports."""

    name: str
    grpc_port: int | None
    http_port: int

    @property
    def package(self) -> str:
        return f"emporium.services.{self.name.replace('-', '_')}"

    @property
    def env_prefix(self) -> str:
        return f"EMPORIUM_{self.name.replace('-', '_').upper()}_"


def _backend(name: str, grpc_port: int) -> ServiceInfo:
    return ServiceInfo(name, grpc_port, http_port=grpc_port - 50000 + 9000)


GATEWAY = ServiceInfo("api_gateway", None, 8080)

BACKENDS: tuple[ServiceInfo, ...] = (
    _backend("user", 50051),
    _backend("order", 50052),
    _backend("product", 50053),
    _backend("payment", 50054),
    _backend("inventory", 50055),
    _backend("notification", 50056),
    _backend("search", 50057),
    _backend("recommendation", 50058),
    _backend("analytics", 50059),
    _backend("auth", 50060),
    _backend("cdn", 50061),
)

SERVICES: tuple[ServiceInfo, ...] = (GATEWAY, *BACKENDS)

# Not one of the twelve: the built-in payment provider (`emporium.sandbox.payments`), an
# outside party that `emporium up` also starts in the embedded profile, on HTTP only.
PAYMENT_SANDBOX = ServiceInfo("payment_sandbox", None, 9070)
BY_NAME: dict[str, ServiceInfo] = {s.name: s for s in SERVICES}


def service(name: str) -> ServiceInfo:
    """Look a service up by name; accepts `api-gateway` and `api_gateway` alike."""
    key = name.replace("-", "_")
    if key not in BY_NAME:
        raise KeyError(f"unknown service {name!r}; known: {', '.join(BY_NAME)}")
    return BY_NAME[key]
