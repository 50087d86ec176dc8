"""Shared fixtures. Port suites parametrize over adapters; see tests/backends.py for how
real servers are found (and why a skip is a failure in CI)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from emporium.chassis.rpc import service_auth


@pytest.fixture(autouse=True)
def _no_service_identity_leaks_between_tests() -> Iterator[None]:
    """A test that installs a process identity (chassis.rpc.service_auth) must not leave
    it to the next one, whose servers and channels would then check or send proofs."""
    yield
    service_auth.install(None)


DEPLOY_TESTS = Path(__file__).parent / "deploy"
# The deployment tests' tools (helm, conftest, a Kubernetes control plane) are built from the
# Go module proxy; on a fresh machine CI builds them in the background while the other tests
# run, and the first deployment test waits for that build: allow it the time.
DEPLOY_TEST_TIMEOUT_S = 1800


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the deployment tests last (their tools may still be building) with a timeout
    that covers waiting for that build, and just before them the tests marked
    `waits_for_build` (the OpenTelemetry Collector, .ci/otelcol.sh); every other test keeps
    its order."""
    deploy = [item for item in items if DEPLOY_TESTS in Path(str(item.path)).parents]
    built = [i for i in items if i not in deploy and i.get_closest_marker("waits_for_build")]
    if not deploy and not built:
        return
    for item in deploy:
        item.add_marker(pytest.mark.timeout(DEPLOY_TEST_TIMEOUT_S))
    rest = [item for item in items if item not in deploy and item not in built]
    items[:] = rest + built + deploy
