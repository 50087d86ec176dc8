"""The production release on a real Kubernetes control plane (issue 9, "A real control plane").

`.ci/kube.sh` starts etcd, kube-apiserver, kube-scheduler and kube-controller-manager (built from
the Go module proxy) on loopback, with kwok playing six nodes in three zones. The CRDs of Argo
Rollouts, Argo CD, Istio 1.20, Strimzi, the Prometheus operator and External Secrets are
installed (the files `.ci/deploy-schemas.sh` also turns into kubeconform schemas),
then `helm install` of the production values: the API server validates every object (custom
resources against their CRD schemas too), the real scheduler places every replica under the chart's
spread constraints, PodDisruptionBudgets refuse evictions that would breach them, and `helm upgrade`
with a new image tag rolls a Deployment without ever going below its replicas.

The Argo Rollouts controller runs beside them: it brings up the three Rollouts (order, payment,
api-gateway) on the fake nodes, and on `helm upgrade` runs the release strategies for real. The
AnalysisTemplates query a real Prometheus; since kwok's pods run no container, the test serves the
new pods' metrics itself (order's new version failing, payment's idle), so the canary of order
is aborted by its SLO analysis while payment's is promoted step by step, and the gateway's
preview waits for a person's promotion.

A missing tool fails these tests (never skips): CI must prove this, not hope for it.
"""

from __future__ import annotations

import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
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
from tests.observability.tools import free_port, running_prometheus

KUBE_SH = ROOT / ".ci" / "kube.sh"
SCHEMAS_SH = ROOT / ".ci" / "deploy-schemas.sh"
ZONES = ("ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c")
# No External Secrets operator (nor its CRDs) here: the release references existing Secrets.
SET_ARGS = ("--set", "secrets.provider=existing")
NEW_TAG = "9.9.9-ci"
FAILING = "order"  # the service whose new version the served metrics make fail


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
            text = err.read()
            try:
                return err.code, json.loads(text or b"{}")
            except ValueError:  # "404 page not found" before a CRD exists is plain text
                return err.code, {"message": text.decode(errors="replace")}


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


class NewPodsMetrics(http.server.ThreadingHTTPServer):
    """The /metrics of the pods a Rollout brings up, which kwok does not run.

    On every scrape it asks the API server which pod-template hash is the new (not yet stable)
    one of FAILING's Rollout and serves that version's RPCs as all failing (`code="INTERNAL"`),
    under the labels the PodMonitor keeps (service, rollouts_pod_template_hash). Other services'
    new pods serve nothing: no traffic, which the analysis counts as no error.
    """

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.failed_calls = 0
        super().__init__(("127.0.0.1", 0), _MetricsHandler)

    def body(self) -> bytes:
        status, rollout = self.cluster.api(
            "GET", f"/apis/argoproj.io/v1alpha1/namespaces/{NAMESPACE}/rollouts/{FAILING}"
        )
        if status != 200:
            return b""
        new, stable = rollout["status"].get("currentPodHash"), rollout["status"].get("stableRS")
        if not new or new == stable:
            return b""
        args = {
            a["name"]: a.get("value")
            for a in rollout["spec"]["strategy"]["canary"]["analysis"]["args"]
        }
        self.failed_calls += 20
        labels = (
            f'service="{args["service"]}",method="/emporium.{FAILING}.v1/Place",'
            f'code="INTERNAL",rollouts_pod_template_hash="{new}"'
        )
        return (
            "# TYPE emporium_rpc_requests_total counter\n"
            f"emporium_rpc_requests_total{{{labels}}} {self.failed_calls}\n"
        ).encode()


class _MetricsHandler(http.server.BaseHTTPRequestHandler):
    server: NewPodsMetrics

    def do_GET(self) -> None:
        body = self.server.body()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def prometheus(cluster: Cluster) -> Iterator[str]:
    """A real Prometheus scraping the new pods' metrics every second: the analyses' source."""
    metrics = NewPodsMetrics(cluster)
    threading.Thread(target=metrics.serve_forever, daemon=True).start()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "new-pods",
                "static_configs": [{"targets": [f"127.0.0.1:{metrics.server_address[1]}"]}],
            }
        ],
    }
    try:
        with running_prometheus(cluster.work / "prometheus", config, free_port()) as url:
            yield url
    finally:
        metrics.shutdown()


@pytest.fixture(scope="module")
def fast_values(cluster: Cluster, prometheus: str) -> Path:
    """The production values' strategies on a test's time scale, analysed by the test's Prometheus:
    the same steps and thresholds, seconds instead of minutes."""
    values = {
        "rollouts": {
            "canary": {
                "steps": [
                    {"setWeight": 20},
                    {"pause": {"duration": "12s"}},
                    {"setWeight": 60},
                    {"pause": {"duration": "12s"}},
                ]
            },
            "analysis": {"prometheusAddress": prometheus, "interval": "2s", "count": 10},
        }
    }
    path = cluster.work / "test-values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(scope="module")
def release(cluster: Cluster, fast_values: Path) -> list[dict[str, Any]]:
    """CRDs and the Rollouts controller installed, then the production release; returns the
    objects helm applied."""
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
    start = subprocess.run(
        [str(KUBE_SH), "rollouts"], capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "EMPORIUM_KUBE_WORK": str(cluster.work),
             "EMPORIUM_KUBE_ROLLOUTS_PORT": str(free_port())},
    )  # fmt: skip
    assert start.returncode == 0, f"Rollouts controller did not start:\n{start.stderr[-8000:]}"
    cluster.helm(
        "install", "emporium", str(CHART), "-n", NAMESPACE, "--create-namespace",
        "-f", str(values_file("production")), "-f", str(fast_values), *SET_ARGS,
        "--timeout", "180s",
    )  # fmt: skip
    manifest = cluster.helm("get", "manifest", "emporium", "-n", NAMESPACE)
    return [d for d in yaml.safe_load_all(manifest) if d]


def deployments(cluster: Cluster) -> list[dict[str, Any]]:
    return cluster.get("deployments", "-n", NAMESPACE, "-l", "app.kubernetes.io/part-of=emporium")


def rollouts(cluster: Cluster) -> dict[str, dict[str, Any]]:
    items = cluster.get("rollouts.argoproj.io", "-n", NAMESPACE)
    return {r["metadata"]["name"]: r for r in items}


def all_ready(cluster: Cluster) -> list[str] | bool:
    """True when every Deployment is fully rolled out; else the names of those that are not."""
    pending = [
        d["metadata"]["name"]
        for d in deployments(cluster)
        if d["status"].get("readyReplicas", 0) != d["spec"]["replicas"]
        or d["status"].get("updatedReplicas", 0) != d["spec"]["replicas"]
    ]
    return not pending or False


def rollouts_healthy(cluster: Cluster) -> bool:
    """True when each Rollout is Healthy with all its replicas ready."""
    return all(
        r["status"].get("phase") == "Healthy"
        and r["status"].get("readyReplicas", 0) == r["spec"]["replicas"]
        for r in rollouts(cluster).values()
    )


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
    """All replicas of every Deployment and Rollout are Running/Ready on the fake nodes; no zone
    skew above 1."""
    wait_until("every Deployment ready", lambda: all_ready(cluster))
    wait_until("every Rollout healthy", lambda: rollouts_healthy(cluster))
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
    expected |= {name: r["spec"]["replicas"] for name, r in rollouts(cluster).items()}
    assert len(expected) == 12, expected
    for app, replicas in expected.items():
        counts = [per_app.get(app, Counter())[z] for z in ZONES]
        assert sum(counts) == replicas, (app, counts)
        assert max(counts) - min(counts) <= 1, (app, counts)


@pytest.fixture(scope="module")
def upgrade(cluster: Cluster, release: list[dict[str, Any]], fast_values: Path) -> dict[str, Any]:
    """`helm upgrade` to NEW_TAG once everything is ready; returns what was there before it (the
    ReplicaSets, each Rollout's stable pod-template hash). Not waited for: the tests watch it."""
    wait_until("every Deployment ready", lambda: all_ready(cluster))
    wait_until("every Rollout healthy", lambda: rollouts_healthy(cluster))
    before = {
        "replicasets": {r["metadata"]["name"] for r in cluster.get("rs", "-n", NAMESPACE)},
        "stable": {n: r["status"]["stableRS"] for n, r in rollouts(cluster).items()},
    }
    cluster.helm(
        "upgrade", "emporium", str(CHART), "-n", NAMESPACE,
        "-f", str(values_file("production")), "-f", str(fast_values),
        *SET_ARGS, "--set", f"global.image.tag={NEW_TAG}", "--timeout", "180s",
    )  # fmt: skip
    return before


def test_helm_upgrade_rolls_a_deployment(cluster: Cluster, upgrade: dict[str, Any]) -> None:
    """A new image tag makes a new ReplicaSet whose pods carry it; availability never drops."""
    name = "user"
    before = json.loads(cluster.kubectl("get", "deployment", name, "-n", NAMESPACE, "-o", "json"))
    replicas = before["spec"]["replicas"]
    assert before["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    old_rs = upgrade["replicasets"]
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
    assert all(i.endswith(f":{NEW_TAG}") for i in images), images
    wait_until("every Deployment ready", lambda: all_ready(cluster))


def route_weights(cluster: Cluster, name: str) -> dict[str, int]:
    """The weights of the VirtualService's `primary` route: {"stable": w, "canary": w}."""
    vs = json.loads(
        cluster.kubectl(
            "get", "virtualservices.networking.istio.io", name, "-n", NAMESPACE, "-o", "json"
        )
    )
    route = next(r for r in vs["spec"]["http"] if r.get("name") == "primary")
    weights = {}
    for dest in route["route"]:
        service = dest["destination"]["host"].split(".")[0]
        weights["canary" if service == f"{name}-canary" else "stable"] = dest.get("weight", 0)
    return weights


def selector_hash(cluster: Cluster, service: str) -> str | None:
    svc = json.loads(cluster.kubectl("get", "service", service, "-n", NAMESPACE, "-o", "json"))
    selector: dict[str, str] = svc["spec"]["selector"]
    return selector.get("rollouts-pod-template-hash")


def analysis_runs(cluster: Cluster, rollout: str) -> list[dict[str, Any]]:
    runs = cluster.get("analysisruns.argoproj.io", "-n", NAMESPACE)
    return [
        r for r in runs
        if any(o.get("name") == rollout for o in r["metadata"].get("ownerReferences", []))
    ]  # fmt: skip


def test_canaries_and_blue_green_follow_their_analysis(
    cluster: Cluster, upgrade: dict[str, Any]
) -> None:
    """The upgrade, as the Rollouts controller carries it out against a real Prometheus:

    order's new version fails (its served metrics: every call INTERNAL), so its SLO analysis fails,
    the canary is aborted and all traffic goes back to the stable version, which kept its replicas;
    payment's canary passes through its weighted steps (seen in the VirtualService) to become the
    stable version; the gateway's preview comes up beside the active version, which keeps the
    traffic until a person promotes it (production: no auto-promotion), then it switches.
    """
    seen: dict[str, set[int]] = {"order": set(), "payment": set()}
    old = upgrade["stable"]

    def settled() -> bool:
        for name in seen:
            seen[name].add(route_weights(cluster, name)["canary"])
        ro = {n: r["status"] for n, r in rollouts(cluster).items()}
        gateway_waits = ro["api-gateway"].get("currentPodHash") != old["api-gateway"] and any(
            c.get("reason") == "BlueGreenPause"
            for c in ro["api-gateway"].get("pauseConditions") or []
        )
        return (
            ro["order"].get("abort") is True
            and ro["payment"].get("stableRS") not in (None, old["payment"])
            and ro["payment"].get("phase") == "Healthy"
            and gateway_waits
        )

    wait_until("order aborted, payment promoted, gateway preview paused", settled, 300, 0.3)
    ro = rollouts(cluster)

    order = ro["order"]["status"]
    assert order["stableRS"] == old["order"]
    assert route_weights(cluster, "order") == {"stable": 100, "canary": 0}
    assert selector_hash(cluster, "order") == old["order"]
    assert order.get("availableReplicas", 0) >= ro["order"]["spec"]["replicas"], order
    failed = [r for r in analysis_runs(cluster, "order") if r["status"].get("phase") == "Failed"]
    assert failed, [r["status"] for r in analysis_runs(cluster, "order")]
    metrics = {m["name"]: m for m in failed[0]["status"]["metricResults"]}
    assert metrics["error-ratio"]["phase"] == "Failed", metrics
    assert any(x.get("value") == "[1]" for x in metrics["error-ratio"]["measurements"]), metrics

    payment = ro["payment"]["status"]
    assert {20, 60} <= seen["payment"], seen  # each weighted step was applied, then undone
    assert route_weights(cluster, "payment") == {"stable": 100, "canary": 0}
    assert selector_hash(cluster, "payment") == payment["stableRS"] == payment["currentPodHash"]
    assert all(
        r["status"].get("phase") == "Successful" for r in analysis_runs(cluster, "payment")
    ), [r["status"].get("phase") for r in analysis_runs(cluster, "payment")]

    gateway = ro["api-gateway"]["status"]
    new = gateway["currentPodHash"]
    assert selector_hash(cluster, "api-gateway") == old["api-gateway"]
    assert selector_hash(cluster, "api-gateway-preview") == new
    cluster.kubectl(
        "patch", "rollout.argoproj.io", "api-gateway", "-n", NAMESPACE, "--subresource=status",
        "--type=merge", "-p", '{"status":{"pauseConditions":null}}',
    )  # fmt: skip
    wait_until(
        "the gateway's active Service on the promoted version",
        lambda: selector_hash(cluster, "api-gateway") == new,
        timeout=120,
    )
    pre = analysis_runs(cluster, "api-gateway")
    assert pre, "no pre-promotion analysis ran"
    assert all(r["status"].get("phase") == "Successful" for r in pre), pre


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
