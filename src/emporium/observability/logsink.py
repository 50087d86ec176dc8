"""Logs into OpenSearch: an OTLP/HTTP logs endpoint that bulk-indexes what the collector sends.

Locally and in CI the OpenTelemetry Collector tails the services' JSON log files (its filelog
receiver parses them and lifts `trace_id`, `span_id`, `level` and `service` into the log record)
and exports them with its `otlphttp` exporter (JSON encoding) to this endpoint, which writes one
document per line into a daily index `emporium-logs-YYYY.MM.DD` of a real OpenSearch node. It
stands in for the collector's own opensearch exporter, which the module proxy here does not
serve (deploy/observability/otelcol/builder.yaml); in the cluster Fluent Bit ships the same lines
to Elasticsearch (the chart's observability hooks). Documents carry `trace_id`, so one term
query finds a request's lines across every service.

Answers follow OTLP/HTTP: 200 with an empty JSON response when the batch is indexed, 400 for a
body that is not OTLP JSON or a document OpenSearch rejects (the collector drops it: retrying
cannot help), 415 for protobuf, and 503 when OpenSearch is unreachable or refuses the request,
which the collector retries (`retry_on_failure`): no line is lost to a short outage.

Run: `python -m emporium.observability.logsink --listen 127.0.0.1:4319 --opensearch URL`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import OpenSearchException
from opensearchpy.helpers import BulkIndexError, bulk

from emporium.chassis.search.dsl import http_url

INDEX_PREFIX = "emporium-logs-"
MAX_BODY_BYTES = 16 * 1024 * 1024
# The daily indexes' mapping: the fields one searches by are keywords; the rest of a line's
# fields are kept but not indexed (services log the same key with different types).
TEMPLATE = {
    "index_patterns": [INDEX_PREFIX + "*"],
    "template": {
        "mappings": {
            "dynamic": False,
            "properties": {
                "@timestamp": {"type": "date"},
                "service": {"type": "keyword"},
                "level": {"type": "keyword"},
                "trace_id": {"type": "keyword"},
                "span_id": {"type": "keyword"},
                "request_id": {"type": "keyword"},
                "message": {"type": "text"},
                "attributes": {"type": "object", "enabled": False},
            },
        }
    },
}


def _value(v: dict[str, Any]) -> Any:
    """An OTLP AnyValue as plain JSON (kvlists become objects, arrays lists)."""
    if "kvlistValue" in v:
        return {kv["key"]: _value(kv.get("value", {})) for kv in v["kvlistValue"].get("values", [])}
    if "arrayValue" in v:
        return [_value(x) for x in v["arrayValue"].get("values", [])]
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "intValue" in v:
        return int(v["intValue"])
    return None


def _attributes(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value", {})) for a in pairs}


def documents(payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One document per log record of an ExportLogsServiceRequest (OTLP JSON)."""
    for resource_logs in payload.get("resourceLogs", []):
        resource = _attributes(resource_logs.get("resource", {}).get("attributes", []))
        for scope in resource_logs.get("scopeLogs", []):
            for record in scope.get("logRecords", []):
                attributes = _attributes(record.get("attributes", []))
                nanos = int(record.get("timeUnixNano") or record.get("observedTimeUnixNano") or 0)
                body = _value(record.get("body", {}))
                yield {
                    "@timestamp": datetime.fromtimestamp(nanos / 1e9, UTC).isoformat(),
                    "service": resource.get("service.name") or attributes.get("service", ""),
                    "level": record.get("severityText", ""),
                    "trace_id": record.get("traceId", "") or attributes.get("trace_id", ""),
                    "span_id": record.get("spanId", "") or attributes.get("span_id", ""),
                    "request_id": attributes.get("request_id", ""),
                    "message": attributes.get("message", body if isinstance(body, str) else ""),
                    "attributes": {k: v for k, v in attributes.items() if k != "message"},
                }


def index_name(doc: dict[str, Any]) -> str:
    return INDEX_PREFIX + str(doc["@timestamp"])[:10].replace("-", ".")


class LogSink(ThreadingHTTPServer):
    """The endpoint: POST /v1/logs -> bulk index into the OpenSearch cluster at `opensearch`
    (`opensearch://`, `opensearchs://` or http(s) URL)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], opensearch: str) -> None:
        url = opensearch if opensearch.startswith("http") else http_url(opensearch)
        self.client = OpenSearch(hosts=[url], timeout=30)
        self.client.indices.put_index_template(name="emporium-logs", body=TEMPLATE)
        super().__init__(address, _Handler)

    def index(self, payload: dict[str, Any]) -> int:
        """Index every record of `payload` (refused items raise); how many were written."""
        actions = [{"_index": index_name(d), "_source": d} for d in documents(payload)]
        if not actions:
            return 0
        written, _ = bulk(self.client, actions, raise_on_error=True)
        return int(written)


class _Handler(BaseHTTPRequestHandler):
    server: LogSink

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._answer(200, {"status": "ok"})
        else:
            self._answer(404, {"message": "POST /v1/logs"})

    def do_POST(self) -> None:
        if self.path.split("?")[0] != "/v1/logs":
            self._answer(404, {"message": "only /v1/logs"})
            return
        if "json" not in self.headers.get("Content-Type", ""):
            self._answer(415, {"message": "OTLP JSON only (otlphttp encoding: json)"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._answer(413, {"message": "batch too large"})
            return
        try:
            payload = json.loads(self.rfile.read(length))
            if not isinstance(payload, dict):
                raise ValueError("not an object")
        except ValueError as e:
            self._answer(400, {"message": f"not OTLP JSON: {e}"})
            return
        try:
            self.server.index(payload)
        except BulkIndexError as e:  # a document OpenSearch will never take: retrying won't help
            self._answer(400, {"message": f"documents refused: {e.errors[:3]}"})
            return
        except (OpenSearchException, ConnectionError) as e:
            self._answer(503, {"message": f"OpenSearch refused the batch: {e}"})
            return
        self._answer(200, {})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return  # the collector's retries say enough; no access log of our own


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emporium.observability.logsink")
    parser.add_argument("--listen", default="127.0.0.1:4319", help="host:port")
    parser.add_argument("--opensearch", required=True, help="opensearch[s]:// or http(s) URL")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    sink = LogSink((host or "127.0.0.1", int(port)), args.opensearch)
    # Started in the background by tests and `make observe`: SIGTERM/SIGINT stop it cleanly.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: threading.Thread(target=sink.shutdown).start())
    print(f"[logsink] OTLP/HTTP logs on http://{args.listen}/v1/logs -> {args.opensearch}")
    sys.stdout.flush()
    sink.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
