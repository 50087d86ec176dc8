"""`emporium up` picks one data directory for itself and every service it starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from emporium import cli, supervisor


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What `up` would have been started with, instead of starting twelve processes."""
    seen: dict[str, Any] = {}

    def fake_up(data_dir: Path, only: list[str] | None, demo: bool = True) -> int:
        import os

        seen.update(data_dir=data_dir, env=os.environ.get("EMPORIUM_DATA_DIR"), demo=demo)
        return 0

    monkeypatch.setattr(supervisor, "up", fake_up)
    monkeypatch.setattr(cli, "migrate", lambda services: 0)
    return seen


@pytest.mark.parametrize(
    ("argv", "environment", "expected"),
    [
        (["up"], None, "var"),
        (["up"], "/srv/emporium", "/srv/emporium"),
        (["up", "--data-dir", "/tmp/x"], "/srv/emporium", "/tmp/x"),
    ],
    ids=["default", "from-environment", "flag-wins"],
)
def test_the_supervisor_and_the_services_agree_on_the_data_dir(
    started: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    environment: str | None,
    expected: str,
) -> None:
    if environment is None:
        monkeypatch.delenv("EMPORIUM_DATA_DIR", raising=False)
    else:
        monkeypatch.setenv("EMPORIUM_DATA_DIR", environment)
    assert cli.main([*argv, "--no-demo"]) == 0
    assert (started["data_dir"], started["env"]) == (Path(expected), expected)
    assert started["demo"] is False
