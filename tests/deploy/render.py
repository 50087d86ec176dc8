"""Render the Helm chart as CI and Argo CD do, for the deployment tests.

The tools come from `.ci/deploy-tools.sh` (built from the Go module proxy, cached per
version); a tool that cannot be had fails the test that needs it, it never skips."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "emporium"
ENVIRONMENTS = ("dev", "staging", "production")
NAMESPACE = "emporium"
KUBE_VERSION = "1.30.0"
# CRD groups the chart renders for: `helm template` needs them named to render them.
API_VERSIONS = (
    "argoproj.io/v1alpha1",
    "security.istio.io/v1beta1",
    "networking.istio.io/v1beta1",
    "kafka.strimzi.io/v1beta2",
    "monitoring.coreos.com/v1",
    "external-secrets.io/v1beta1",
)


@functools.cache
def tool(name: str) -> str:
    """The absolute path of a deployment tool (waits for a build CI runs in the background)."""
    out = subprocess.run(
        [str(ROOT / ".ci" / "deploy-tools.sh"), "path", name],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"deploy tool {name} unavailable:\n{out.stderr[-3000:]}")
    return out.stdout.strip().splitlines()[-1]


def values_file(env: str) -> Path:
    return ROOT / "deploy" / "environments" / env / "values.yaml"


def helm(*args: str) -> str:
    """Run helm; a failure raises with its message (the test shows why)."""
    out = subprocess.run(
        [tool("helm"), *args], capture_output=True, text=True, timeout=300, check=False
    )
    if out.returncode != 0:
        raise AssertionError(f"helm {' '.join(args[:2])} failed:\n{out.stderr}")
    return out.stdout


@functools.cache
def render_text(env: str, *set_args: str) -> str:
    """`helm template` of one environment (plus `--set` pairs), as YAML text."""
    args = ["template", "emporium", str(CHART), "-n", NAMESPACE, "-f", str(values_file(env))]
    args += ["--kube-version", KUBE_VERSION]
    for api in API_VERSIONS:
        args += ["--api-versions", api]
    for pair in set_args:
        args += ["--set", pair]
    return helm(*args)


def render(env: str, *set_args: str) -> list[dict[str, Any]]:
    """The rendered objects of one environment (a fresh copy: callers may mutate it)."""
    return [doc for doc in yaml.safe_load_all(render_text(env, *set_args)) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} objects rendered"
    return matches[0]


def of_kind(docs: list[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in kinds]
