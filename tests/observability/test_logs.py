"""One request's log lines, found across services by its trace id in a real OpenSearch node.

The platform runs as `make up` does (embedded profile, JSON lines in var/log/<service>.log, each
carrying the trace id of the span it was written in); a real OpenTelemetry Collector (Emporium's
build) tails those files with its filelog receiver and exports them over OTLP/HTTP to
`emporium.observability.logsink`, which indexes them into the OpenSearch node CI runs
(`.ci/opensearch.sh`). A shopper places an order with a request id of its own; the trace id
of that request (from the services' log files) must then find, in OpenSearch, the lines of
several services, exactly the lines the files hold for that trace: none lost, none doubled.

Without the collector or the OpenSearch node this fails in CI and skips on a laptop."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opensearchpy import OpenSearch

from emporium.chassis.search.dsl import http_url
from emporium.observability.logsink import INDEX_PREFIX
from tests.backends import backend_url
from tests.e2e.platform import GATEWAY, running_platform, wait_healthy
from tests.observability.otelcol import running_collector, wait_for
from tests.observability.tools import demo_products, free_port, place_order, signed_up, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.waits_for_build, pytest.mark.timeout(1800)]

ADMIN_PASSWORD = "logs-admin-password-1"


def file_lines(log_dir: Path) -> list[dict[str, Any]]:
    lines = []
    for path in sorted(log_dir.glob("*.log")):
        for raw in path.read_text(errors="replace").splitlines():
            if raw.startswith("{"):
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    continue  # a line being written
    return lines


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OpenSearch, Path, str]]:
    """OpenSearch, the platform's log dir and the request id of one order whose lines the
    collector shipped through the sink."""
    url = backend_url("opensearch")
    tmp = tmp_path_factory.mktemp("logs")
    port = free_port()
    sink_log = tmp / "logsink.log"
    with sink_log.open("w") as out:
        sink = subprocess.Popen(
            [sys.executable, "-m", "emporium.observability.logsink",
             "--listen", f"127.0.0.1:{port}", "--opensearch", url],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", sink, sink_log)
        logs = (str(tmp / "var" / "log" / "*.log"), f"http://127.0.0.1:{port}/v1/logs")
        with running_collector(tmp / "otelcol", logs=logs) as collector:
            env = {
                "EMPORIUM_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "EMPORIUM_GATEWAY_RATE_LIMIT": "1000",
                # Per RPC and per event handled: a line in every service the order goes through.
                "EMPORIUM_LOG_LEVEL": "DEBUG",
            }
            with running_platform(tmp, env, demo=True) as platform:
                try:
                    wait_healthy()
                    yield (
                        OpenSearch(hosts=[http_url(url)], timeout=30),
                        tmp / "var" / "log",
                        order_of_a_new_shopper(),
                    )
                except BaseException:
                    print(platform.log()[-10000:])
                    print(collector.log.read_text(errors="replace")[-5000:])
                    print(sink_log.read_text(errors="replace")[-3000:])
                    raise
    finally:
        sink.terminate()
        sink.wait(timeout=30)


def order_of_a_new_shopper() -> str:
    client = httpx.Client(base_url=GATEWAY, timeout=20.0)
    products = demo_products(client)
    auth = signed_up(client, "logs")
    request_id = f"logs-test-{uuid.uuid4().hex}"
    with httpx.Client(base_url=GATEWAY, timeout=20.0, headers={"X-Request-Id": request_id}) as c:
        order = place_order(c, auth, products[0]["id"])
    assert order.status_code in (201, 202), order.text
    return request_id


def search_trace(client: OpenSearch, trace_id: str) -> list[dict[str, Any]]:
    client.indices.refresh(index=INDEX_PREFIX + "*")
    found = client.search(
        index=INDEX_PREFIX + "*",
        body={"query": {"term": {"trace_id": trace_id}}, "size": 1000},
    )
    return [hit["_source"] for hit in found["hits"]["hits"]]


def test_one_requests_lines_are_found_across_services_by_trace_id(
    shipped: tuple[OpenSearch, Path, str],
) -> None:
    client, log_dir, request_id = shipped
    mine = [ln for ln in file_lines(log_dir) if ln.get("request_id") == request_id]
    traces = {ln["trace_id"] for ln in mine if ln.get("trace_id")}
    assert len(traces) == 1, f"the request's lines carry trace ids {traces}: {mine[:5]}"
    trace_id = traces.pop()

    def all_shipped() -> list[dict[str, Any]] | None:
        in_files = Counter(
            (ln["service"], ln["message"]) for ln in file_lines(log_dir)
            if ln.get("trace_id") == trace_id
        )  # fmt: skip
        docs = search_trace(client, trace_id)
        in_index = Counter((d["service"], d["message"]) for d in docs)
        return docs if in_files and in_index == in_files else None

    docs = wait_for(all_shipped, timeout=90, interval=1.0)
    if not docs:
        indexed = Counter(d["service"] for d in search_trace(client, trace_id))
        written = Counter(
            ln["service"] for ln in file_lines(log_dir) if ln.get("trace_id") == trace_id
        )
        pytest.fail(f"trace {trace_id}: OpenSearch holds {indexed}, the files {written}")
    services = {d["service"] for d in docs}
    print(
        f"trace {trace_id}: {len(docs)} lines in OpenSearch, {Counter(d['service'] for d in docs)}"
    )
    # The gateway's access line, the saga's RPCs and the consumers of the order's events.
    assert {"api_gateway", "order", "payment", "inventory"} <= services, services
    assert all(d["trace_id"] == trace_id and d["level"] for d in docs), docs[:3]
