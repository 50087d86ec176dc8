"""Shared fixtures. Port suites parametrize over adapters; see tests/backends.py for how
real servers are found (and why a skip is a failure in CI)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emporium.chassis.rpc import service_auth


@pytest.fixture(autouse=True)
def _no_service_identity_leaks_between_tests() -> Iterator[None]:
    """A test that installs a process identity (chassis.rpc.service_auth) must not leave
    it to the next one, whose servers and channels would then check or send proofs."""
    yield
    service_auth.install(None)
