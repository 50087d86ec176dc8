"""The Prometheus and Alertmanager command-line tools the rule tests run.

Debian's `prometheus` (promtool 2.42) and `prometheus-alertmanager` (amtool 0.25) packages.
Missing, the tests skip on a laptop and fail under EMPORIUM_REQUIRE_REAL_BACKENDS=1 (CI),
like every real-backend test (tests/backends.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.backends import require_real_backends

ROOT = Path(__file__).resolve().parents[2] / "deploy" / "observability"
INSTALL = "apt-get install -y --no-install-recommends prometheus prometheus-alertmanager"


def tool(name: str) -> str:
    """The path of `name`, or skip (fail in CI) when it is not installed."""
    path = shutil.which(name)
    if path:
        return path
    reason = f"{name} is not installed (`{INSTALL}`)"
    if require_real_backends():
        pytest.fail(f"EMPORIUM_REQUIRE_REAL_BACKENDS=1 but {reason}")
    pytest.skip(reason)
