"""JSON log lines: one object per record, tagged with service, request id and trace ids."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from emporium.chassis.logging import configure_logging, request_id_var


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]


def test_line_carries_service_request_and_trace_ids(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("order", "DEBUG")
    tracer = TracerProvider().get_tracer("test")
    token = request_id_var.set("req-7")
    try:
        with tracer.start_as_current_span("work") as span:
            logging.getLogger("emporium.test").info(
                "order %s placed", "o-1", extra={"order_id": "o-1", "total_cents": 1250}
            )
    finally:
        request_id_var.reset(token)

    [entry] = lines(capsys)
    context = span.get_span_context()
    assert entry["message"] == "order o-1 placed"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "emporium.test"
    assert entry["service"] == "order"
    assert entry["request_id"] == "req-7"
    assert entry["trace_id"] == f"{context.trace_id:032x}"
    assert entry["span_id"] == f"{context.span_id:016x}"
    assert (entry["order_id"], entry["total_cents"]) == ("o-1", 1250)
    assert entry["time"].endswith("+00:00")


def test_without_request_or_span_the_ids_are_omitted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("user")
    logging.getLogger("x").warning("plain")
    [entry] = lines(capsys)
    assert "request_id" not in entry
    assert "trace_id" not in entry


def test_exception_text_is_included(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("payment")
    try:
        raise ValueError("declined\nsecond line")
    except ValueError:
        logging.getLogger("x").exception("charge failed")
    [entry] = lines(capsys)  # multi-line text stays on one line
    assert "ValueError: declined" in entry["exception"]
    assert "Traceback" in entry["exception"]


def test_configuring_twice_does_not_duplicate_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("order")
    configure_logging("inventory", "INFO")
    logging.getLogger("x").info("once")
    logging.getLogger("x").debug("filtered by level")
    [entry] = lines(capsys)
    assert entry["service"] == "inventory"


def test_unserializable_extra_is_rendered_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("order")
    logging.getLogger("x").info("odd", extra={"thing": object()})
    [entry] = lines(capsys)
    assert entry["thing"].startswith("<object object")
