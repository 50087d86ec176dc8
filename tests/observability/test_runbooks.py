"""Every alert of the rules has a runbook entry in docs/runbooks.md and a `runbook_url`
annotation pointing at it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.observability.tools import ROOT

RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks.md"


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the `## ` headings (lower case, spaces to dashes)."""
    headings = re.findall(r"^## (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}


def _alerts() -> list[dict[str, object]]:
    found = []
    for path in sorted((ROOT / "prometheus" / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            found += [rule for rule in group["rules"] if "alert" in rule]
    return found


def test_every_alert_has_a_runbook_url_and_an_entry() -> None:
    known = anchors(RUNBOOKS.read_text())
    alerts = _alerts()
    assert alerts
    for alert in alerts:
        annotations = alert["annotations"]
        assert isinstance(annotations, dict)
        url = annotations.get("runbook_url", "")
        assert url == f"docs/runbooks.md#{str(alert['alert']).lower()}", alert["alert"]
        assert url.split("#", 1)[1] in known, f"no entry for {alert['alert']} in runbooks.md"


def test_the_parked_saga_entry_names_the_operator_commands() -> None:
    entry = RUNBOOKS.read_text().split("## SagasParked", 1)[1]
    for command in ("emporium sagas list", "emporium sagas retry", "emporium sagas cancel"):
        assert command in entry


def test_anchors_follow_github() -> None:
    assert anchors("## ServiceDown\n## Two words\n") == {"servicedown", "two-words"}
