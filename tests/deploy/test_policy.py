"""The seed's rules that no schema states, as conftest (Rego v1) policies in deploy/policy:
their own unit tests pass and catch every rule's broken case, each environment's rendered
release passes them, and a rendered release broken one way fails with that rule's message.

The input of a policy is one release, `{"env": ..., "objects": [...]}`, so rules that span
objects (a PDB per workload, a preview Service) and rules per environment (replicas) see what
they need. conftest comes from `.ci/deploy-tools.sh`; without it the tests fail."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.render import ENVIRONMENTS, ROOT, find, render, tool

POLICY = ROOT / "deploy" / "policy"
DATA = POLICY / "data"
# A deny rule starts at column 0 and ends at the first closing brace at column 0 (or on
# its own line when it has no body).
DENY_RULE = re.compile(r"^deny contains .*?(?:\{\n.*?^\}$|[^{]$)", re.M | re.S)


def conftest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("conftest"), *args, "--no-color"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def verify(policy: Path) -> subprocess.CompletedProcess[str]:
    return conftest("verify", "--policy", str(policy), "--data", str(DATA))


def failures(env: str, docs: list[dict[str, Any]], tmp_path: Path) -> list[str]:
    """conftest's deny messages for one release (an empty list when it passes)."""
    path = tmp_path / f"{env}.json"
    path.write_text(json.dumps({"env": env, "objects": docs}))
    out = conftest(
        "test", "--policy", str(POLICY), "--data", str(DATA), "--output", "json", str(path)
    )
    assert out.returncode in (0, 1), out.stderr
    [result] = json.loads(out.stdout)
    return sorted(f["msg"] for f in result.get("failures") or [])


def test_policy_unit_tests_pass() -> None:
    out = verify(POLICY)
    assert out.returncode == 0, out.stdout + out.stderr
    counts = re.search(r"(\d+) tests, (\d+) passed", out.stdout)
    assert counts, out.stdout
    assert int(counts[1]) >= 30, out.stdout
    assert counts[1] == counts[2], out.stdout


def deny_rules() -> list[tuple[Path, str]]:
    rules = []
    for path in sorted(POLICY.glob("*.rego")):
        if not path.name.endswith("_test.rego"):
            rules += [(path, m[0]) for m in DENY_RULE.finditer(path.read_text())]
    return rules


def test_every_rule_has_a_failing_case(tmp_path: Path) -> None:
    """Remove one deny rule at a time: some unit test must then fail, i.e. each rule has a
    test of a release that only that rule rejects (a rule nobody tests would go unnoticed)."""
    rules = deny_rules()
    assert len(rules) >= 20, [r[1].splitlines()[0] for r in rules]

    def without(index: int) -> tuple[str, int]:
        path, rule = rules[index]
        copy = tmp_path / str(index)
        shutil.copytree(POLICY, copy, ignore=shutil.ignore_patterns("data"))
        target = copy / path.name
        target.write_text(target.read_text().replace(rule, "", 1))
        return rule.splitlines()[1] if "\n" in rule else rule, verify(copy).returncode

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(without, range(len(rules))))
    untested = [rule for rule, code in results if code == 0]
    assert not untested, f"rules no unit test catches: {untested}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_rendered_release_keeps_the_rules(env: str, tmp_path: Path) -> None:
    assert failures(env, render(env), tmp_path) == []


def container(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return find(docs, kind, name)["spec"]["template"]["spec"]["containers"][0]


def drop_pdb(docs: list[dict[str, Any]]) -> None:
    docs.remove(find(docs, "PodDisruptionBudget", "user"))


def one_order(docs: list[dict[str, Any]]) -> None:
    find(docs, "Rollout", "order")["spec"]["replicas"] = 1


def keep_capabilities(docs: list[dict[str, Any]]) -> None:
    container(docs, "Deployment", "cdn")["securityContext"]["capabilities"]["drop"] = []


def literal_password(docs: list[dict[str, Any]]) -> None:
    env = container(docs, "Rollout", "payment")["env"]
    env.append({"name": "EMPORIUM_PAYMENT_DATABASE_PASSWORD", "value": "hunter2"})


def permissive_mtls(docs: list[dict[str, Any]]) -> None:
    find(docs, "PeerAuthentication", "default")["spec"]["mtls"]["mode"] = "PERMISSIVE"


def auto_promote(docs: list[dict[str, Any]]) -> None:
    find(docs, "Rollout", "api-gateway")["spec"]["strategy"]["blueGreen"][
        "autoPromotionEnabled"
    ] = True


def rolling_unavailable(docs: list[dict[str, Any]]) -> None:
    find(docs, "Deployment", "search")["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = 1


def no_liveness(docs: list[dict[str, Any]]) -> None:
    del container(docs, "Deployment", "auth")["livenessProbe"]


def zone_skew(docs: list[dict[str, Any]]) -> None:
    spread = find(docs, "Deployment", "inventory")["spec"]["template"]["spec"]
    spread["topologySpreadConstraints"][0]["maxSkew"] = 2


def secret_literal(docs: list[dict[str, Any]]) -> None:
    docs.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "order-database"},
            "stringData": {"url": "postgresql://order:hunter2@db/order"},
        }
    )


BREAKS: dict[str, tuple[Callable[[list[dict[str, Any]]], None], str]] = {
    "pdb": (drop_pdb, "pdb: Deployment/user has 3 replicas and no PodDisruptionBudget"),
    "replicas": (one_order, "replicas: order has 1 replicas in production, the seed runs 5"),
    "drop-all": (keep_capabilities, "security: container cdn of Deployment/cdn does not drop ALL"),
    "env-literal": (literal_password, "secrets: env EMPORIUM_PAYMENT_DATABASE_PASSWORD"),
    "secret-data": (secret_literal, "secrets: Secret order-database carries stringData"),
    "mtls": (permissive_mtls, "mtls: no namespace-wide PeerAuthentication with mode STRICT"),
    "promotion": (auto_promote, "strategy: blue-green of api-gateway must not promote auto"),
    "rolling": (rolling_unavailable, "strategy: Deployment/search must roll with RollingUpdate"),
    "probes": (no_liveness, "probes: container auth of Deployment/auth has no livenessProbe"),
    "spread": (zone_skew, "spread: Deployment/inventory has no topologySpreadConstraint on top"),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_broken_production_release_fails_with_the_rule(case: str, tmp_path: Path) -> None:
    """One change to the rendered production release: conftest rejects it with exactly the
    broken rule's message (and nothing else fails, so the message is that change's)."""
    break_it, message = BREAKS[case]
    docs = render("production")
    break_it(docs)
    msgs = failures("production", docs, tmp_path)
    assert len(msgs) == 1, msgs
    assert msgs[0].startswith(message), msgs
