"""Fixtures of the gateway tests: the backends' gRPC doubles and an in-process gateway
client talking to them (tests/services/gateway_doubles.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.services.gateway_doubles import Doubles, gateway_client, serve_doubles


@pytest.fixture
async def doubles() -> AsyncIterator[Doubles]:
    async with serve_doubles() as running:
        yield running


@pytest.fixture
async def client(doubles: Doubles) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_client(doubles.targets()) as http:
        yield http
