"""`EMPORIUM_OUTBOX_RELAY=off` takes the built-in relay out of every producing service (CDC
publishes the outbox then, docs/cdc.md), and `EMPORIUM_<SERVICE>_OUTBOX_RELAY` out of one;
nothing else in the service's wiring changes.

Each backend is built by its real `app.build`, as `emporium run` builds it; what runs is read
off the background tasks the runtime would start. Building connects to nothing, so the
PostgreSQL URL that `off` requires (only PostgreSQL has a WAL for CDC to tail) needs no server
here: `NOWHERE` is never dialled.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from emporium.chassis.catalog import BACKENDS
from emporium.chassis.config import ConfigError, load_settings
from emporium.chassis.events.relay import OutboxRelay
from emporium.chassis.runtime import ServiceApp

# DESIGN.md's producers: the services with an outbox.
PRODUCERS = {"user", "order", "product", "payment", "inventory"}
NOWHERE = "postgresql+asyncpg://cdc@127.0.0.1:9/never_connected"


async def background_of(name: str, env: dict[str, str]) -> list[str]:
    """The names of the background tasks service `name` would run, relays as `relay`."""
    build = importlib.import_module(f"emporium.services.{name}.app").build
    app: ServiceApp = await build(load_settings(name, env))
    try:
        return [
            "relay"
            if isinstance(getattr(task, "__self__", None), OutboxRelay)
            else getattr(task, "__qualname__", type(task).__name__)
            for task in app.background
        ]
    finally:
        for close in reversed(app.on_stop):
            await close()


async def relays(env: dict[str, str]) -> dict[str, int]:
    return {b.name: (await background_of(b.name, env)).count("relay") for b in BACKENDS}


async def test_every_producer_runs_one_relay_by_default(tmp_path: Path) -> None:
    counts = await relays({"EMPORIUM_DATA_DIR": str(tmp_path)})
    assert {name for name, n in counts.items() if n} == PRODUCERS
    assert set(counts.values()) == {0, 1}


async def test_relay_off_removes_every_relay_and_nothing_else(tmp_path: Path) -> None:
    base = {"EMPORIUM_DATA_DIR": str(tmp_path), "EMPORIUM_DATABASE_URL": NOWHERE}
    off = {**base, "EMPORIUM_OUTBOX_RELAY": "off"}
    assert set((await relays(off)).values()) == {0}
    for name in sorted(PRODUCERS):
        with_relay = await background_of(name, base)
        without = await background_of(name, off)
        assert [t for t in with_relay if t != "relay"] == without


async def test_one_service_can_leave_its_outbox_to_cdc(tmp_path: Path) -> None:
    env = {
        "EMPORIUM_DATA_DIR": str(tmp_path),
        "EMPORIUM_ORDER_OUTBOX_RELAY": "off",
        "EMPORIUM_ORDER_DATABASE_URL": NOWHERE,
    }
    counts = await relays(env)
    assert counts["order"] == 0
    assert {name for name, n in counts.items() if n} == PRODUCERS - {"order"}


async def test_relay_off_on_sqlite_stops_the_service_naming_the_variable(tmp_path: Path) -> None:
    env = {"EMPORIUM_DATA_DIR": str(tmp_path), "EMPORIUM_PAYMENT_OUTBOX_RELAY": "off"}
    with pytest.raises(ConfigError) as info:
        await background_of("payment", env)
    assert str(info.value).startswith("EMPORIUM_PAYMENT_OUTBOX_RELAY")
    assert "PostgreSQL" in str(info.value)
