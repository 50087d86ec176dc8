"""Forwarded headers: believed only from configured proxies, read from the right
(services/api_gateway/forwarded.py)."""

from __future__ import annotations

import pytest

from emporium.chassis.config import ConfigError
from emporium.services.api_gateway.forwarded import (
    TRUSTED_PROXIES_VAR,
    TrustedProxies,
    client_address,
    forwarded_hops,
    parse_address,
)

INGRESS = TrustedProxies.parse("10.0.0.0/8, 127.0.0.1")


def headers(**values: str) -> list[tuple[bytes, bytes]]:
    return [(k.replace("_", "-").encode(), v.encode()) for k, v in values.items()]


def test_by_default_nobody_is_trusted_and_the_peer_is_the_client() -> None:
    spoofed = headers(x_forwarded_for="198.51.100.7", forwarded="for=198.51.100.8")
    assert TrustedProxies.from_env({}).networks == ()
    assert client_address("127.0.0.1", spoofed, TrustedProxies()) == "127.0.0.1"
    assert client_address("192.0.2.1", spoofed, INGRESS) == "192.0.2.1"  # not a proxy


def test_from_a_trusted_proxy_the_first_untrusted_hop_from_the_right_is_the_client() -> None:
    chain = headers(x_forwarded_for="203.0.113.9, 198.51.100.7, 10.1.2.3")
    # 203.0.113.9 was written by the client itself; 198.51.100.7 is what the edge saw.
    assert client_address("10.0.0.5", chain, INGRESS) == "198.51.100.7"
    all_trusted = headers(x_forwarded_for="10.9.9.9, 10.1.2.3")
    assert client_address("127.0.0.1", all_trusted, INGRESS) == "10.9.9.9"
    assert client_address("127.0.0.1", [], INGRESS) == "127.0.0.1"


def test_rfc_7239_forwarded_wins_over_x_forwarded_for() -> None:
    both = headers(
        forwarded='for=192.0.2.60;proto=https, for="[2001:db8:cafe::17]:4711"',
        x_forwarded_for="198.51.100.1",
    )
    assert forwarded_hops(both) == ["192.0.2.60", '"[2001:db8:cafe::17]:4711"']
    assert client_address("10.0.0.5", both, INGRESS) == "2001:db8:cafe::17"


def test_an_entry_that_is_no_address_ends_the_walk_at_the_last_trusted_hop() -> None:
    for bad in ("unknown", "_hidden", "garbage", ""):
        chain = headers(x_forwarded_for=f"198.51.100.7, {bad}, 10.1.2.3")
        assert client_address("10.0.0.5", chain, INGRESS) == "10.1.2.3"
    assert client_address("10.0.0.5", headers(x_forwarded_for="nope"), INGRESS) == "10.0.0.5"


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("192.0.2.1", "192.0.2.1"),
        (" 192.0.2.1:4711 ", "192.0.2.1"),
        ('"[2001:db8::1]:80"', "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("[2001:db8::1", None),
        ("unknown", None),
    ],
)
def test_addresses_are_parsed_with_ports_brackets_and_quotes(
    text: str, address: str | None
) -> None:
    parsed = parse_address(text)
    assert (str(parsed) if parsed else None) == address


def test_a_bad_trusted_proxies_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=TRUSTED_PROXIES_VAR):
        TrustedProxies.from_env({TRUSTED_PROXIES_VAR: "10.0.0.0/8, not-an-ip"})
    assert TrustedProxies.parse(" , ").networks == ()
