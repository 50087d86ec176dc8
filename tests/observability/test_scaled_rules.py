"""`rules.rule_files(time_scale=...)`: the same rules with every window and `for:` shrunk, for
an end-to-end alert test that cannot wait an hour; promtool accepts them, and only durations
change (names, thresholds, labels and annotations stay the generated ones)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from emporium.observability import generate, rules
from tests.observability.tools import tool


def test_time_scale_one_is_the_committed_rules() -> None:
    assert rules.rule_files(1.0) == rules.rule_files()


def test_scaled_rules_shrink_only_durations() -> None:
    normal, fast = rules.rule_files(), rules.rule_files(time_scale=60)
    for name, document in normal.items():
        for group, scaled_group in zip(document["groups"], fast[name]["groups"], strict=True):
            for rule, scaled in zip(group["rules"], scaled_group["rules"], strict=True):
                assert {k: v for k, v in rule.items() if k not in ("expr", "for")} == {
                    k: v for k, v in scaled.items() if k not in ("expr", "for")
                }
                strip = re.compile(r"\[\d+[smhd]\]|offset \d+[smhd]")
                assert strip.sub("D", rule["expr"]) == strip.sub("D", scaled["expr"])
    slo_rules = fast["slo.yml"]["groups"][0]["rules"]
    fast_burn = next(r for r in slo_rules if r.get("alert") == "SLOBurnRateFast")
    assert fast_burn["for"] == "2s"  # 2m / 60
    recorded_1h = next(r for r in slo_rules if r.get("record") == f"{rules.ERROR_RATIO}1h")
    assert "[60s]" in recorded_1h["expr"]
    dead = next(
        r
        for r in fast["platform.yml"]["groups"][0]["rules"]
        if r["alert"] == "DeadLetteredMessages"
    )
    assert dead["for"] == "0s"


def test_promtool_accepts_the_scaled_rules(tmp_path: Path) -> None:
    paths = []
    for name, document in rules.rule_files(time_scale=360).items():
        path = tmp_path / name
        path.write_text(generate.render(document))
        paths.append(str(path))
    result = subprocess.run(
        [tool("promtool"), "check", "rules", *paths], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
