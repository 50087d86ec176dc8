"""Every rendered object, and the Argo CD objects, validate in kubeconform's strict mode
against the Kubernetes 1.30 schemas and the CRD schemas of Argo Rollouts, Argo CD, Istio
1.20, Strimzi, the Prometheus operator and External Secrets (.ci/deploy-schemas.sh).
Strict: an unknown field is an error, and a kind without a schema is an error too (no
`-ignore-missing-schemas`), so a typo cannot pass as "skipped"."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.render import ENVIRONMENTS, ROOT, find, render, render_text, tool


@functools.cache
def schemas() -> Path:
    out = subprocess.run(
        [str(ROOT / ".ci" / "deploy-schemas.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "PYTHON": sys.executable},
    )
    if out.returncode != 0:
        raise RuntimeError(f"schemas unavailable:\n{out.stderr[-3000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def kubeconform(path: Path) -> dict[str, Any]:
    """kubeconform's JSON report of one file (strict, every schema required)."""
    base = schemas()
    out = subprocess.run(
        [
            tool("kubeconform"),
            "-strict",
            "-summary",
            "-output",
            "json",
            "-kubernetes-version",
            "1.30.0",
            "-schema-location",
            f"{base}/kubernetes/{{{{ .NormalizedKubernetesVersion }}}}-local"
            "{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json",
            "-schema-location",
            f"{base}/crd-schemas/{{{{ .Group }}}}-{{{{ .ResourceKind }}}}_"
            "{{ .ResourceAPIVersion }}.json",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report: dict[str, Any] = json.loads(out.stdout)
    report["returncode"] = out.returncode
    return report


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_rendered_object_is_valid(env: str, tmp_path: Path) -> None:
    path = tmp_path / f"{env}.yaml"
    path.write_text(render_text(env))
    report = kubeconform(path)
    summary = report["summary"]
    assert report["returncode"] == 0, [
        r for r in report["resources"] if r["status"] != "statusValid"
    ]
    assert summary["invalid"] == summary["errors"] == summary["skipped"] == 0
    assert summary["valid"] == len(render(env))


def test_argocd_objects_are_valid() -> None:
    for path in sorted((ROOT / "deploy" / "argocd").glob("*.yaml")):
        report = kubeconform(path)
        assert report["returncode"] == 0, report
        assert report["summary"]["valid"] == 1


def broken(docs: list[dict[str, Any]], break_it: Any, tmp_path: Path) -> dict[str, Any]:
    break_it(docs)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return kubeconform(path)


def test_a_typo_in_a_canary_step_is_rejected(tmp_path: Path) -> None:
    def typo(docs: list[dict[str, Any]]) -> None:
        steps = find(docs, "Rollout", "order")["spec"]["strategy"]["canary"]["steps"]
        steps[0] = {"setWeigth": steps[0]["setWeight"]}

    report = broken(render("production"), typo, tmp_path)
    assert report["returncode"] != 0
    (bad,) = [r for r in report["resources"] if r["status"] == "statusInvalid"]
    assert bad["name"] == "order"
    assert "setWeigth" in bad["msg"]


def test_an_unknown_mtls_mode_is_rejected(tmp_path: Path) -> None:
    def strictest(docs: list[dict[str, Any]]) -> None:
        find(docs, "PeerAuthentication", "default")["spec"]["mtls"]["mode"] = "STRICTEST"

    report = broken(render("production"), strictest, tmp_path)
    (bad,) = [r for r in report["resources"] if r["status"] == "statusInvalid"]
    assert bad["kind"] == "PeerAuthentication"


def test_a_kind_without_a_schema_is_an_error_not_a_skip(tmp_path: Path) -> None:
    def unknown(docs: list[dict[str, Any]]) -> None:
        docs.append({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}})

    report = broken(render("dev"), unknown, tmp_path)
    assert report["returncode"] != 0
    assert report["summary"]["skipped"] == 0
    assert report["summary"]["errors"] == 1
