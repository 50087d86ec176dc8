"""The production release on a real Kubernetes control plane (issue 9, "A real control plane").

`.ci/kube.sh` starts etcd, kube-apiserver, kube-scheduler and kube-controller-manager (built from
the Go module proxy) on loopback, with kwok playing six nodes in three zones. The CRDs of Argo
Rollouts, Argo CD, Istio 1.20, Strimzi, the Prometheus operator and External Secrets are
installed (the files `.ci/deploy-schemas.sh` also turns into kubeconform schemas),
then `helm install` of the production values: the API server validates every object (custom
resources against their CRD schemas too), the real scheduler places every replica under the chart's
spread constraints, PodDisruptionBudgets refuse evictions that would breach them, and `helm upgrade`
with a new image tag rolls a Deployment without ever going below its replicas.

A missing tool fails these tests (never skips): CI must prove this, not hope for it. No Argo
Rollouts
controller runs here, so the three Rollouts (order, payment, api-gateway) are checked as accepted
objects; every Deployment's pods are checked as scheduled.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.render import CHART, NAMESPACE, ROOT, tool, values_file

KUBE_SH = ROOT / ".ci" / "kube.sh"
SCHEMAS_SH = ROOT / ".ci" / "deploy-schemas.sh"
ZONES = ("ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c")
# No External Secrets operator (nor its CRDs) here: the release references existing Secrets.
SET_ARGS = ("--set", "secrets.provider=existing")


class Cluster:
    """kubectl/helm/raw API access to the control plane that `.ci/kube.sh` started."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.kubeconfig = work / "admin.kubeconfig"
        self.env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        config = yaml.safe_load(self.kubeconfig.read_text())
        self.server = config["clusters"][0]["cluster"]["server"]
        user = config["users"][0]["user"]
        self.ssl = ssl.create_default_context(
            cafile=config["clusters"][0]["cluster"]["certificate-authority"]
        )
        self.ssl.load_cert_chain(user["client-certificate"], user["client-key"])

    def run(self, *args: str, timeout: float = 300) -> str:
        out = subprocess.run(
            args, capture_output=True, text=True, env=self.env, timeout=timeout, check=False
        )
        if out.returncode != 0:
            raise AssertionError(f"{' '.join(args[:3])} failed:\n{out.stderr[-4000:]}")
        return out.stdout

    def kubectl(self, *args: str) -> str:
        return self.run("kubectl", *args)

    def helm(self, *args: str) -> str:
        return self.run(tool("helm"), *args, timeout=600)

    def get(self, *args: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.kubectl("get", *args, "-o", "json"))["items"]
        return items

    def api(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """One raw API request; returns the HTTP status and the decoded body."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, context=self.ssl, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")


def wait_until(what: str, check: Any, timeout: float = 120, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The control plane for this module, in its own work dir, stopped afterwards."""
    work = tmp_path_factory.mktemp("kube")
    env = {**os.environ, "EMPORIUM_KUBE_WORK": str(work)}
    t0 = time.monotonic()
    start = subprocess.run(
        [str(KUBE_SH), "start"], capture_output=True, text=True, env=env, timeout=1800, check=False
    )
    try:
        assert start.returncode == 0, f"control plane did not start:\n{start.stderr[-8000:]}"
        print(f"control plane up in {time.monotonic() - t0:.1f} s")
        yield Cluster(work)
    finally:
        subprocess.run(
            [str(KUBE_SH), "stop"], capture_output=True, env=env, timeout=120, check=False
        )


def chart_for(cluster: Cluster) -> Path:
    """The chart, or, when the API server reports no version, a copy without `kubeVersion`.

    The cached kube-apiserver built by an older `.ci/deploy-tools.sh` lacks the version ldflags and
    says v0.0.0, which helm's `kubeVersion: >=1.28` refuses; it is v1.37 all the same.
    """
    version = json.loads(cluster.kubectl("get", "--raw", "/version"))["gitVersion"]
    if not version.startswith("v0.0.0"):
        return CHART
    copy = cluster.work / "chart"
    if not copy.exists():
        shutil.copytree(CHART, copy)
        meta = copy / "Chart.yaml"
        meta.write_text(
            "".join(
                ln for ln in meta.read_text().splitlines(True) if not ln.startswith("kubeVersion:")
            )
        )
    return copy


@pytest.fixture(scope="module")
def release(cluster: Cluster) -> list[dict[str, Any]]:
    """CRDs installed, then the production release; returns the objects helm applied."""
    out = subprocess.run(
        [str(SCHEMAS_SH)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert out.returncode == 0, f"CRDs unavailable:\n{out.stderr[-4000:]}"
    files = sorted(str(f) for f in (Path(out.stdout.split()[-1]) / "crds").glob("*.yaml"))
    groups = {Path(f).name.split("-")[0].removesuffix(".yaml") for f in files}
    assert {"argo", "argocd", "istio", "strimzi", "prometheus", "external"} <= groups, groups
    for f in files:
        cluster.kubectl("apply", "--server-side", "-f", f)
    cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    chart = chart_for(cluster)
    cluster.helm(
        "install", "emporium", str(chart), "-n", NAMESPACE, "--create-namespace",
        "-f", str(values_file("production")), *SET_ARGS, "--timeout", "180s",
    )  # fmt: skip
    manifest = cluster.helm("get", "manifest", "emporium", "-n", NAMESPACE)
    return [d for d in yaml.safe_load_all(manifest) if d]


def deployments(cluster: Cluster) -> list[dict[str, Any]]:
    return cluster.get("deployments", "-n", NAMESPACE, "-l", "app.kubernetes.io/part-of=emporium")


def all_ready(cluster: Cluster) -> list[str] | bool:
    """True when every Deployment is fully rolled out; else the names of those that are not."""
    pending = [
        d["metadata"]["name"]
        for d in deployments(cluster)
        if d["status"].get("readyReplicas", 0) != d["spec"]["replicas"]
        or d["status"].get("updatedReplicas", 0) != d["spec"]["replicas"]
    ]
    return not pending or False


def node_zones(cluster: Cluster) -> dict[str, str]:
    return {
        n["metadata"]["name"]: n["metadata"]["labels"]["topology.kubernetes.io/zone"]
        for n in cluster.get("nodes")
    }


def test_api_server_accepts_every_object(cluster: Cluster, release: list[dict[str, Any]]) -> None:
    """Every object of the release exists on the server (custom resources checked by their CRDs)."""
    assert len(release) > 50
    kinds = {d["kind"] for d in release}
    assert {
        "Rollout",
        "Deployment",
        "PodDisruptionBudget",
        "Kafka",
        "KafkaTopic",
        "PeerAuthentication",
    } <= kinds
    for doc in release:
        group = doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else ""
        resource = f"{doc['kind'].lower()}.{group}" if group else doc["kind"].lower()
        ns = doc["metadata"].get("namespace", NAMESPACE)
        got = json.loads(
            cluster.kubectl("get", resource, doc["metadata"]["name"], "-n", ns, "-o", "json")
        )
        assert got["metadata"]["uid"], doc["metadata"]["name"]
    rollouts = {r["metadata"]["name"] for r in cluster.get("rollouts.argoproj.io", "-n", NAMESPACE)}
    assert rollouts == {"order", "payment", "api-gateway"}


def test_every_replica_scheduled_across_zones(
    cluster: Cluster, release: list[dict[str, Any]]
) -> None:
    """All Deployment replicas are Running/Ready on the fake nodes; no zone skew above 1."""
    wait_until("every Deployment ready", lambda: all_ready(cluster))
    zones = node_zones(cluster)
    pods = cluster.get("pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/part-of=emporium")
    per_app: dict[str, Counter[str]] = {}
    for pod in pods:
        if pod["metadata"].get("ownerReferences", [{}])[0].get("kind") != "ReplicaSet":
            continue
        assert pod["spec"].get("nodeName") in zones, pod["metadata"]["name"]
        assert pod["status"]["phase"] == "Running"
        app = pod["metadata"]["labels"]["app.kubernetes.io/name"]
        per_app.setdefault(app, Counter())[zones[pod["spec"]["nodeName"]]] += 1
    expected = {d["metadata"]["name"]: d["spec"]["replicas"] for d in deployments(cluster)}
    assert len(expected) == 9, expected
    for app, replicas in expected.items():
        counts = [per_app.get(app, Counter())[z] for z in ZONES]
        assert sum(counts) == replicas, (app, counts)
        assert max(counts) - min(counts) <= 1, (app, counts)


def test_helm_upgrade_rolls_a_deployment(cluster: Cluster, release: list[dict[str, Any]]) -> None:
    """A new image tag makes a new ReplicaSet whose pods carry it; availability never drops."""
    wait_until("every Deployment ready", lambda: all_ready(cluster))
    name = "user"
    before = json.loads(cluster.kubectl("get", "deployment", name, "-n", NAMESPACE, "-o", "json"))
    replicas = before["spec"]["replicas"]
    assert before["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    old_rs = {
        r["metadata"]["name"]
        for r in cluster.get("rs", "-n", NAMESPACE, "-l", f"app.kubernetes.io/name={name}")
    }
    cluster.helm(
        "upgrade", "emporium", str(chart_for(cluster)), "-n", NAMESPACE,
        "-f", str(values_file("production")),
        *SET_ARGS, "--set", "global.image.tag=9.9.9-ci", "--timeout", "180s",
    )  # fmt: skip
    min_available = replicas
    deadline = time.monotonic() + 120
    while True:
        d = json.loads(cluster.kubectl("get", "deployment", name, "-n", NAMESPACE, "-o", "json"))
        min_available = min(min_available, d["status"].get("availableReplicas", 0))
        done = (
            d["status"].get("observedGeneration", 0) >= d["metadata"]["generation"]
            and d["status"].get("updatedReplicas", 0) == replicas
            and d["status"].get("replicas", 0) == replicas
            and d["status"].get("availableReplicas", 0) == replicas
        )
        if done:
            break
        assert time.monotonic() < deadline, d["status"]
        time.sleep(0.1)
    assert min_available >= replicas, f"went down to {min_available} of {replicas} available"
    new_rs = [
        r for r in cluster.get("rs", "-n", NAMESPACE, "-l", f"app.kubernetes.io/name={name}")
        if r["metadata"]["name"] not in old_rs
    ]  # fmt: skip
    assert len(new_rs) == 1
    assert new_rs[0]["spec"]["replicas"] == replicas
    pods = cluster.get("pods", "-n", NAMESPACE, "-l", f"app.kubernetes.io/name={name}")
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    images = {c["image"] for p in live for c in p["spec"]["containers"]}
    assert images
    assert all(i.endswith(":9.9.9-ci") for i in images), images
    wait_until("every Deployment ready", lambda: all_ready(cluster))


def drain_zone(cluster: Cluster, zone: str) -> tuple[list[str], list[str]]:
    """Cordon the zone's nodes and evict every release pod on them; returns (evicted, refused)."""
    nodes = [n for n, z in node_zones(cluster).items() if z == zone]
    for n in nodes:
        cluster.kubectl("cordon", n)
    evicted, refused = [], []
    for pod in cluster.get("pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/part-of=emporium"):
        if pod["spec"].get("nodeName") not in nodes or pod["metadata"].get("deletionTimestamp"):
            continue
        name = pod["metadata"]["name"]
        status, body = cluster.api(
            "POST",
            f"/api/v1/namespaces/{NAMESPACE}/pods/{name}/eviction",
            {
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": name, "namespace": NAMESPACE},
            },
        )
        app = pod["metadata"]["labels"]["app.kubernetes.io/name"]
        if status == 429:
            refused.append(app)
        else:
            assert status in (200, 201), (status, body)
            evicted.append(app)
    return evicted, refused


def assert_no_pdb_breached(cluster: Cluster) -> None:
    for pdb in cluster.get("pdb", "-n", NAMESPACE):
        st = pdb["status"]
        assert st["currentHealthy"] >= st["desiredHealthy"], (pdb["metadata"]["name"], st)


def test_draining_zones_is_refused_where_pdbs_would_break(
    cluster: Cluster, release: list[dict[str, Any]]
) -> None:
    """Drain zone a, then zone b while a is still out: the PDBs refuse (429) what would breach them.

    With zone a cordoned the zone spread (DoNotSchedule) keeps the replacements Pending, so each
    multi-replica service is already one short; evicting its pod in zone b must be refused.
    """
    wait_until("every Deployment ready", lambda: all_ready(cluster))
    evicted_a, refused_a = drain_zone(cluster, ZONES[0])
    assert evicted_a, "zone a held no pods"
    time.sleep(2)
    assert_no_pdb_breached(cluster)
    evicted_b, refused_b = drain_zone(cluster, ZONES[1])
    time.sleep(2)
    assert_no_pdb_breached(cluster)
    multi = {d["metadata"]["name"] for d in deployments(cluster) if d["spec"]["replicas"] > 1}
    assert set(refused_a + refused_b) & multi, (evicted_a, refused_a, evicted_b, refused_b)
