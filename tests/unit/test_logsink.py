"""The log sink: OTLP JSON records -> documents (end to end: tests/observability/test_logs.py)."""

from __future__ import annotations

from typing import Any

from emporium.observability.logsink import documents, index_name


def _payload() -> dict[str, Any]:
    return {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "order"}}]
                },
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "timeUnixNano": "1764720000000000000",
                                "severityText": "DEBUG",
                                "traceId": "0af7651916cd43dd8448eb211c80319c",
                                "spanId": "b7ad6b7169203331",
                                "body": {"stringValue": '{"message": "rpc handled"}'},
                                "attributes": [
                                    {"key": "message", "value": {"stringValue": "rpc handled"}},
                                    {"key": "request_id", "value": {"stringValue": "r-1"}},
                                    {"key": "duration_ms", "value": {"doubleValue": 1.5}},
                                    {"key": "attempt", "value": {"intValue": "2"}},
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }


def test_a_record_becomes_one_searchable_document() -> None:
    [doc] = list(documents(_payload()))
    assert doc["service"] == "order"
    assert doc["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert doc["span_id"] == "b7ad6b7169203331"
    assert doc["request_id"] == "r-1"
    assert doc["level"] == "DEBUG"
    assert doc["message"] == "rpc handled"
    assert doc["attributes"] == {"request_id": "r-1", "duration_ms": 1.5, "attempt": 2}
    assert doc["@timestamp"].startswith("2025-12-03T00:00:00")
    assert index_name(doc) == "emporium-logs-2025.12.03"


def test_a_payload_without_records_has_no_documents() -> None:
    assert list(documents({})) == []
    assert list(documents({"resourceLogs": [{"scopeLogs": [{"logRecords": []}]}]})) == []
