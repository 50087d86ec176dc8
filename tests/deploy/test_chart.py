"""The Helm chart agrees with the code it deploys: the catalog's ports and names, the
variables `load_settings` reads, the topics the event contracts name, the deadlines the
clients use, the SLO table, the metric names, and the seed's communication edges.

A schema cannot state these (tests/deploy/test_manifests.py validates the shapes and
deploy/policy the seed's rules); a rename on either side fails here."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from emporium.chassis import metrics
from emporium.chassis.catalog import BACKENDS, SERVICES, service
from emporium.chassis.config import load_settings
from emporium.chassis.events.consumer import dead_letter_topic
from emporium.chassis.rpc import jwks
from emporium.chassis.search import open_search
from emporium.chassis.search.elastic import ElasticsearchIndex
from emporium.chassis.search.opensearch import OpenSearchIndex
from emporium.contracts.events import (
    inventory_low,
    order_completed,
    order_created,
    product_updated,
    user_registered,
)
from emporium.observability.slo import SLOS
from emporium.services.api_gateway import auth as gateway_auth
from emporium.services.api_gateway import backends as gateway_backends
from emporium.services.order import clients as order_clients
from tests.deploy.render import (
    CHART,
    ENVIRONMENTS,
    NAMESPACE,
    ROOT,
    find,
    helm,
    of_kind,
    render,
    values_file,
)

# The seed's synchronous edges (DESIGN.md) plus the one every backend has with auth for its
# token keys (GetJwks, documented in docs/deploy.md).
SEED_EDGES = {
    "api-gateway": {b.name.replace("_", "-") for b in BACKENDS},
    "order": {"payment", "inventory", "product", "auth"},
    "user": {"auth"},
}
TOKEN_KEY_CALLERS = {b.name for b in BACKENDS} - {"auth", "order", "user"}

# A placeholder per store kind: what a Secret holds, to check the services accept it.
SECRET_URLS = {
    "DATABASE": "postgresql+asyncpg://u:p@db.internal:5432/x",
    "KV": "rediss://:p@redis.internal:6379/0",
    "DOCUMENTS": "mongodb+srv://u:p@mongo.internal/notification",
    "SEARCH": "https://u:p@search.internal:443",
    "OLAP": "clickhouses://u:p@olap.internal:8443/analytics",
}


# The workloads of the traces pipeline (templates/tracing.yaml), not catalog services.
TRACING = {"otel-collector", "jaeger"}


def part_of(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["labels"]["app.kubernetes.io/part-of"])


def k8s_name(catalog_name: str) -> str:
    return catalog_name.replace("_", "-")


def workload(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [d for d in of_kind(docs, "Deployment", "Rollout") if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{name}: {len(found)} workloads"
    return found[0]


def container(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    spec = workload(docs, name)["spec"]["template"]["spec"]
    assert len(spec["containers"]) == 1
    return spec["containers"][0]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_catalog_service_runs_with_its_ports_and_command(env: str) -> None:
    docs = render(env)
    workloads = of_kind(docs, "Deployment", "Rollout")
    names = {d["metadata"]["name"] for d in workloads if part_of(d) == "emporium"}
    assert names == {k8s_name(s.name) for s in SERVICES}
    # Besides them only the tracing pipeline's own workloads (tracing.yaml).
    assert {d["metadata"]["name"] for d in workloads if part_of(d) != "emporium"} <= TRACING
    for info in SERVICES:
        c = container(docs, k8s_name(info.name))
        assert c["args"] == ["run", info.name]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        expected = {"http": info.http_port} | ({"grpc": info.grpc_port} if info.grpc_port else {})
        assert ports == expected, info.name
        svc = find(docs, "Service", k8s_name(info.name))
        assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == expected


def external_secret_urls(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The store URL each ExternalSecret templates, by Secret name, with a placeholder user
    and password where the secret manager's credentials go."""
    urls = {}
    for es in of_kind(docs, "ExternalSecret"):
        template = es["spec"]["target"].get("template", {}).get("data", {}).get("url")
        if template:
            filled = template.replace("{{ .username | urlquery }}", "u")
            urls[es["spec"]["target"]["name"]] = filled.replace("{{ .password | urlquery }}", "p")
    return urls


def pod_environ(docs: list[dict[str, Any]], name: str) -> dict[str, str]:
    """The environment a pod of `name` starts with: the ConfigMap, literal values, and for
    each secret reference the URL its ExternalSecret templates, else (Secrets the operator
    makes) a placeholder (checked to exist in production elsewhere)."""
    config = find(docs, "ConfigMap", "emporium-config")["data"]
    templated = external_secret_urls(docs)
    c = container(docs, name)
    assert [s["configMapRef"]["name"] for s in c["envFrom"]] == ["emporium-config"]
    environ = dict(config)
    for var in c["env"]:
        if "value" in var:
            environ[var["name"]] = var["value"]
        else:
            kind = var["name"].rsplit("_", 2)[-2]
            secret = var["valueFrom"]["secretKeyRef"]["name"]
            environ[var["name"]] = templated.get(secret, SECRET_URLS[kind])
    return environ


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_services_accept_the_configuration_the_chart_gives_them(env: str) -> None:
    """Each pod's variables load with the service's own settings loader and point at the
    production adapters: no store falls back to an embedded file inside a pod."""
    docs = render(env)
    for info in SERVICES:
        settings = load_settings(info.name, pod_environ(docs, k8s_name(info.name)))
        assert settings.host == "0.0.0.0"
        assert settings.bus_url.startswith("kafka://")
        assert settings.outbox_relay == ("builtin" if env == "dev" else "off")
    wanted = {
        "user": ("database_url", "postgresql+asyncpg://"),
        "order": ("database_url", "postgresql+asyncpg://"),
        "inventory": ("kv_url", "rediss://"),
        "notification": ("documents_url", "mongodb+srv://"),
        # the managed OpenSearch of AWS where the seed runs (Secrets from the secret manager)
        "search": ("search_url", "https://" if env == "dev" else "opensearchs://"),
        "analytics": ("olap_url", "clickhouses://"),
        "auth": ("kv_url", "rediss://"),
        "cdn": ("blob_url", "s3://"),
    }
    for name, (field, prefix) in wanted.items():
        value = getattr(load_settings(name, pod_environ(docs, name)), field)
        assert value.startswith(prefix), (name, field, value)
    search = open_search(load_settings("search", pod_environ(docs, "search")).search_url)
    assert isinstance(search, ElasticsearchIndex if env == "dev" else OpenSearchIndex)


def test_backends_are_reached_by_their_kubernetes_service() -> None:
    docs = render("production")
    config = find(docs, "ConfigMap", "emporium-config")["data"]
    for info in BACKENDS:
        target = config[f"{info.env_prefix}GRPC_TARGET"]
        host, port = target.split(":")
        svc = find(docs, "Service", host)
        assert int(port) in {p["port"] for p in svc["spec"]["ports"]}
        assert (host, int(port)) == (k8s_name(info.name), info.grpc_port)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_kafka_topics_are_the_contracts_topics_and_their_dead_letters(env: str) -> None:
    docs = render(env)
    topics = {t["spec"]["topicName"]: t["spec"] for t in of_kind(docs, "KafkaTopic")}
    contract = {
        m.TOPIC
        for m in (order_created, order_completed, user_registered, product_updated, inventory_low)
    }
    assert set(topics) == contract | {dead_letter_topic(t) for t in contract}
    for spec in topics.values():
        assert spec["replicas"] == 3
        assert spec["config"]["min.insync.replicas"] == 2
    kafka = find(docs, "Kafka", "emporium")
    assert kafka["spec"]["kafka"]["rack"]["topologyKey"] == "topology.kubernetes.io/zone"
    pools = {p["metadata"]["name"]: p["spec"] for p in of_kind(docs, "KafkaNodePool")}
    assert {n: (p["roles"], p["replicas"]) for n, p in pools.items()} == {
        "brokers": (["broker"], 3),
        "controllers": (["controller"], 3),
    }


def longest_deadlines() -> dict[str, float]:
    """The longest deadline any caller's code gives each backend's RPCs."""
    longest: dict[str, float] = {}

    def seen(callee: str, seconds: float) -> None:
        longest[callee] = max(longest.get(callee, 0.0), seconds)

    for policy in gateway_backends.POLICIES.values():
        seen(policy.service, policy.default_timeout)
    seen("order", gateway_backends.PLACE_ORDER_TIMEOUT_SECONDS)
    seen("cdn", gateway_backends.UPLOAD_TIMEOUT_SECONDS)
    seen("auth", gateway_auth.PASSWORD_CALL_TIMEOUT_SECONDS)
    for callee in ("payment", "inventory", "product"):
        seen(callee, order_clients.DEFAULT_TIMEOUT_SECONDS)
    seen("payment", order_clients.DEFAULT_CHARGE_TIMEOUT_SECONDS)
    seen("auth", max(jwks.JWKS_TIMEOUT_SECONDS, jwks.VALIDATE_TIMEOUT_SECONDS))
    return longest


def seconds(duration: str) -> float:
    assert duration.endswith("s"), duration
    return float(duration[:-1])


def test_mesh_timeouts_are_the_clients_deadlines_and_the_mesh_never_retries() -> None:
    """Envoy must neither cut a call the code still waits for nor wait longer than it, and
    must not retry: the code retries idempotent methods only (PlaceOrder is not blindly
    retried), so a mesh retry would repeat what the code decided not to."""
    docs = render("production")
    deadlines = longest_deadlines()
    for info in BACKENDS:
        vs = find(docs, "VirtualService", k8s_name(info.name))
        (route,) = vs["spec"]["http"]
        assert route["retries"] == {"attempts": 0}
        assert seconds(route["timeout"]) == deadlines[info.name], info.name
    public = find(docs, "VirtualService", "emporium-public")
    api = next(r for r in public["spec"]["http"] if r["name"] == "api")
    assert seconds(api["timeout"]) > max(deadlines.values())
    assert api["retries"] == {"attempts": 0}


def test_release_analysis_measures_the_seed_slo_with_exported_metrics() -> None:
    docs = render("production")
    exported = {
        "grpc": (metrics.RPC_REQUESTS._name, metrics.RPC_LATENCY._name),
        "http": (metrics.HTTP_REQUESTS._name, metrics.HTTP_LATENCY._name),
    }
    for slo in SLOS:
        name = k8s_name(slo.service)
        if name == "search":
            continue  # rolling: the SLO is watched by alerts, not a release analysis
        strategy = workload(docs, name)["spec"]["strategy"]
        step = (
            strategy.get("canary", {}).get("analysis")
            or strategy["blueGreen"]["prePromotionAnalysis"]
        )
        args = {a["name"]: a.get("value") for a in step["args"]}
        assert args["service"] == slo.service
        assert float(args["p99-seconds"]) == slo.p99_seconds
        assert float(args["max-error-ratio"]) == slo.max_error_ratio
        (template,) = step["templates"]
        assert template["templateName"] == f"emporium-slo-{slo.protocol}"
        analysis = find(docs, "AnalysisTemplate", template["templateName"])
        queries = [m["provider"]["prometheus"]["query"] for m in analysis["spec"]["metrics"]]
        requests, latency = exported[slo.protocol]
        # prometheus_client names a counter without `_total`; the series carries it.
        assert any(f"{requests}_total{{" in q for q in queries), queries
        assert any(f"{latency}_bucket{{" in q for q in queries), queries
        assert all("rollouts_pod_template_hash" in q for q in queries)


def principals(policy: dict[str, Any]) -> dict[str, set[str]]:
    """caller service account -> the paths it may call ('*' for all)."""
    allowed: dict[str, set[str]] = {}
    prefix = f"cluster.local/ns/{NAMESPACE}/sa/"
    for rule in policy["spec"]["rules"]:
        paths = set(rule["to"][0]["operation"].get("paths", ["*"]))
        for source in rule["from"]:
            for p in source["source"]["principals"]:
                who = p.removeprefix(prefix) if p.startswith(prefix) else "ingress"
                allowed.setdefault(who, set()).update(paths)
    return allowed


def test_mesh_and_network_policies_allow_exactly_the_seed_edges() -> None:
    docs = render("production")
    assert find(docs, "PeerAuthentication", "default")["spec"]["mtls"]["mode"] == "STRICT"
    for info in BACKENDS:
        name = k8s_name(info.name)
        callers = {c for c, callees in SEED_EDGES.items() if name in callees}
        if name == "auth":
            callers |= {k8s_name(c) for c in TOKEN_KEY_CALLERS}
        allowed = principals(find(docs, "AuthorizationPolicy", name))
        expected = callers | ({"ingress"} if name == "cdn" else set())
        assert set(allowed) == expected, name
        if name == "auth":
            for caller in TOKEN_KEY_CALLERS:
                assert allowed[k8s_name(caller)] == {"/emporium.auth.v1.AuthService/GetJwks"}
            assert allowed["api-gateway"] == allowed["user"] == {"*"}
        policy = find(docs, "NetworkPolicy", name)
        peers = {
            peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
            for rule in policy["spec"]["ingress"]
            for peer in rule["from"]
            if "podSelector" in peer and "namespaceSelector" not in peer
        }
        assert peers == callers, name
    gateway = principals(find(docs, "AuthorizationPolicy", "api-gateway"))
    assert set(gateway) == {"ingress"}


def test_production_secrets_all_come_from_external_secrets() -> None:
    """Every Secret a production pod or the migration Job reads is made by an ExternalSecret
    (none is rendered with a value, and none is left for someone to create by hand)."""
    docs = render("production")
    assert not of_kind(docs, "Secret")
    made = {d["spec"]["target"]["name"] for d in of_kind(docs, "ExternalSecret")}
    wanted: set[str] = set()
    for pod in of_kind(docs, "Deployment", "Rollout", "Job"):
        spec = pod["spec"]["template"]["spec"]
        for c in spec["containers"]:
            wanted |= {
                v["valueFrom"]["secretKeyRef"]["name"]
                for v in c.get("env", [])
                if "secretKeyRef" in v.get("valueFrom", {})
            }
        wanted |= {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    assert wanted
    assert wanted <= made, sorted(wanted - made)


def test_migrations_run_before_install_and_upgrade_for_every_relational_service() -> None:
    docs = render("production")
    job = find(docs, "Job", "emporium-migrate")
    hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
    assert hooks == {"pre-install", "pre-upgrade"}
    (c,) = job["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["migrate"]
    relational = {"user", "order", "product", "payment", "inventory", "auth"}
    assert {v["name"] for v in c["env"] if v["name"].endswith("_DATABASE_URL")} == {
        f"{service(n).env_prefix}DATABASE_URL" for n in relational
    }


def test_cdc_mode_switches_the_relays_off_and_tails_every_outbox() -> None:
    builtin = render("production", "cdc.mode=builtin")
    assert not of_kind(builtin, "KafkaConnect", "KafkaConnector")
    assert find(builtin, "ConfigMap", "emporium-config")["data"]["EMPORIUM_OUTBOX_RELAY"] == (
        "builtin"
    )
    docs = render("production")
    assert find(docs, "ConfigMap", "emporium-config")["data"]["EMPORIUM_OUTBOX_RELAY"] == "off"
    connectors = {c["metadata"]["name"]: c["spec"] for c in of_kind(docs, "KafkaConnector")}
    producers = {"user", "order", "product", "payment", "inventory"}
    assert set(connectors) == {f"outbox-{p}" for p in producers}
    for spec in connectors.values():
        assert spec["tasksMax"] == 1  # one slot reader: per-key order
        assert spec["config"]["transforms.outbox.type"].endswith("outbox.EventRouter")
        for key in ("database.user", "database.password", "database.hostname"):
            assert spec["config"][key].startswith("${secrets:"), key


def test_chart_packages_into_a_repository_index(tmp_path: Path) -> None:
    """What the central chart repository serves: the packaged chart and an index naming it
    with its digest (Argo CD's Applications pull `emporium` at the chart's version)."""
    helm("package", str(CHART), "-d", str(tmp_path))
    helm("repo", "index", str(tmp_path), "--url", "https://charts.emporium.example.com")
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    package = tmp_path / f"emporium-{chart['version']}.tgz"
    assert package.is_file()
    index = yaml.safe_load((tmp_path / "index.yaml").read_text())
    (entry,) = index["entries"]["emporium"]
    assert entry["version"] == chart["version"]
    assert entry["digest"] == hashlib.sha256(package.read_bytes()).hexdigest()
    assert entry["urls"] == [f"https://charts.emporium.example.com/{package.name}"]
    appset = yaml.safe_load((ROOT / "deploy" / "argocd" / "applicationset.yaml").read_text())
    (chart_source,) = [s for s in appset["spec"]["template"]["spec"]["sources"] if "chart" in s]
    assert chart_source["targetRevision"] == chart["version"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_helm_lint_is_clean_for_every_environment(env: str) -> None:
    """`helm lint --strict`: warnings fail too."""
    out = helm("lint", "--strict", str(CHART), "-f", str(values_file(env)))
    assert "1 chart(s) linted, 0 chart(s) failed" in out


def test_traces_go_from_every_service_to_the_collector_and_on_to_jaeger() -> None:
    """The pods send OTLP to the release's collector, which tail-samples (errors, slow
    traces, a share of the rest) and exports to Jaeger; the mesh and the network policies
    open exactly services -> collector -> Jaeger."""
    docs = render("production")
    config = find(docs, "ConfigMap", "emporium-config")["data"]
    assert config["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://otel-collector.{NAMESPACE}.svc:4317"
    ports = {p["port"] for p in find(docs, "Service", "otel-collector")["spec"]["ports"]}
    assert {4317, 4318} <= ports
    collector = yaml.safe_load(find(docs, "ConfigMap", "otel-collector")["data"]["otelcol.yaml"])
    pipeline = collector["service"]["pipelines"]["traces"]
    assert pipeline["processors"] == ["memory_limiter", "tail_sampling", "batch"]
    policies = collector["processors"]["tail_sampling"]["policies"]
    assert {p["type"] for p in policies} == {"status_code", "latency", "probabilistic"}
    (exporter,) = pipeline["exporters"]
    host, port = collector["exporters"][exporter]["endpoint"].split(":")
    assert int(port) in {p["port"] for p in find(docs, "Service", host)["spec"]["ports"]}
    assert host == "jaeger"
    assert set(principals(find(docs, "AuthorizationPolicy", "otel-collector"))) == {
        k8s_name(s.name) for s in SERVICES
    }
    assert set(principals(find(docs, "AuthorizationPolicy", "jaeger"))) == {"otel-collector"}
    (rule,) = find(docs, "NetworkPolicy", "jaeger")["spec"]["ingress"]
    assert [p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in rule["from"]] == [
        "otel-collector"
    ]
    for info in SERVICES:
        egress = find(docs, "NetworkPolicy", k8s_name(info.name))["spec"]["egress"]
        assert any(
            peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
            == "otel-collector"
            for rule in egress
            for peer in rule.get("to", [])
        ), info.name
    off = render("production", "observability.tracing.enabled=false")
    assert not [d for d in off if d["metadata"]["name"] in TRACING]
    assert (
        find(off, "ConfigMap", "emporium-config")["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
        == (yaml.safe_load((CHART / "values.yaml").read_text())["observability"]["otlpEndpoint"])
    )
