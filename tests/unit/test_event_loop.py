"""Which event loop a service process runs on: uvloop by default, the standard one on request."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from emporium.chassis.config import ConfigError, load_settings
from emporium.chassis.runtime import run_on_loop


def loop_of(kind: str) -> asyncio.AbstractEventLoop:
    seen: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        seen.append(asyncio.get_running_loop())

    run_on_loop(main(), kind)
    return seen[0]


def test_uvloop_is_the_default_and_runs_the_service() -> None:
    assert load_settings("order", {}).event_loop == "uvloop"
    assert isinstance(loop_of("uvloop"), uvloop.Loop)


def test_the_standard_loop_on_request() -> None:
    settings = load_settings("order", {"EMPORIUM_EVENT_LOOP": "asyncio"})
    assert settings.event_loop == "asyncio"
    assert not isinstance(loop_of(settings.event_loop), uvloop.Loop)


def test_an_unknown_loop_is_a_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="EMPORIUM_EVENT_LOOP"):
        load_settings("order", {"EMPORIUM_EVENT_LOOP": "trio"})
