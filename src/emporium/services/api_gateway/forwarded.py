"""Which address a request comes from: the peer, unless the peer is a configured proxy.

`X-Forwarded-For` and `Forwarded` (RFC 7239) are plain request headers: anyone can write
them. Believed from any peer, they let a client choose its own address and step around every
per-address limit (forty wrong passwords with forty `X-Forwarded-For` values never got a 429).
So they are read only when the connection comes from an address listed in
`EMPORIUM_GATEWAY_TRUSTED_PROXIES` (comma-separated IPs or CIDRs, e.g. the ingress
gateway's pod range; default: none, the peer is the client). uvicorn's own handling is off
(`chassis.runtime`), because its default trusts 127.0.0.1.

From a trusted peer the chain is read from the right, where each proxy appended the address
it saw: trusted hops are skipped, the first untrusted one is the client. `Forwarded` is used
when present, else `X-Forwarded-For`. An entry that is not an IP address (`unknown`, an
obfuscated `_name`, garbage) ends the walk at the last trusted hop, never at the entry.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from emporium.chassis.config import ConfigError

TRUSTED_PROXIES_VAR = "EMPORIUM_GATEWAY_TRUSTED_PROXIES"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TrustedProxies:
    """The networks whose forwarded headers are believed (empty: nobody's)."""

    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str) -> TrustedProxies:
        networks = []
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ConfigError(f"{TRUSTED_PROXIES_VAR}: {item!r} is not an IP or CIDR") from None
        return cls(tuple(networks))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> TrustedProxies:
        return cls.parse(environ.get(TRUSTED_PROXIES_VAR, ""))

    def trusts(self, address: IPAddress | None) -> bool:
        return address is not None and any(address in network for network in self.networks)


def parse_address(text: str) -> IPAddress | None:
    """`192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]:4711`, `"[2001:db8::1]"` -> the address."""
    value = text.strip().strip('"').strip()
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:  # IPv4 with a port
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forwarded_hops(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """The forwarded chain, left (the original client, as claimed) to right (the hop the
    nearest proxy saw): `for=` of every `Forwarded` element, else `X-Forwarded-For`."""
    forwarded: list[str] = []
    x_forwarded_for: list[str] = []
    for raw_name, raw_value in headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name == "forwarded":
            for element in value.split(","):
                for pair in element.split(";"):
                    key, _, given = pair.partition("=")
                    if key.strip().lower() == "for":
                        forwarded.append(given)
        elif name == "x-forwarded-for":
            x_forwarded_for.extend(value.split(","))
    return forwarded or x_forwarded_for


def client_address(
    peer: str, headers: Iterable[tuple[bytes, bytes]], trusted: TrustedProxies
) -> str:
    """The client's address under the rules of the module docstring."""
    current = parse_address(peer)
    if not trusted.trusts(current):
        return peer
    client = peer
    for hop in reversed(forwarded_hops(headers)):
        address = parse_address(hop)
        if address is None:
            return client
        client = str(address)
        if not trusted.trusts(address):
            return client
    return client


class ForwardedClientMiddleware:
    """Pure ASGI middleware putting the client address (see `client_address`) into
    `scope["client"]`, where the rate limits, the login throttle and the logs read it."""

    def __init__(self, app: Any, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        peer = scope.get("client")
        if scope["type"] in ("http", "websocket") and peer and self.trusted.networks:
            address = client_address(str(peer[0]), scope.get("headers", ()), self.trusted)
            if address != peer[0]:
                scope = {**scope, "client": (address, 0)}
        await self.app(scope, receive, send)
