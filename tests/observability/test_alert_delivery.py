"""Alerts reach people: the platform's own failure, seen by a real Prometheus, routed by a
real Alertmanager, arrives at PagerDuty and Slack, and its end arrives too.

Everything is real except the two vendors: `emporium up` runs all twelve services (embedded
profile, demo catalog), Debian's Prometheus scrapes them every half second and evaluates the
generated rules with every window shrunk `TIME_SCALE` times (`rules.rule_files(time_scale)`),
and Debian's Alertmanager runs the generated configuration with waits of a second
(`alertmanager.Timing`) and its secrets in files written here. PagerDuty and Slack are one
local HTTP server (`Receiver`) that accepts what their APIs accept (Events API v2,
incoming webhooks) and records it.

The fault is an outage of the payment provider (the sandbox's fault switches): first its
charges and voids fail, and a checkout placed then cannot be charged nor voided, so its saga
parks (ticket `SagasParked`, commerce team: Slack); then its token checks fail too, so every
new order fails in payment-service, order-service and at the gateway (page
`SLOBurnRateFast`: PagerDuty). Two alerts of two services, so the inhibitions (a page
silences the ticket of its own service and SLI) leave both standing. Then the provider
recovers and the operator retries the parked saga (`emporium sagas retry`): PagerDuty gets
the `resolve` of the same incident and Slack the resolved message.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from emporium.chassis.catalog import PAYMENT_SANDBOX
from emporium.observability import alertmanager, generate, rules
from emporium.observability.slo import OWNERS
from tests.e2e.platform import GATEWAY, Platform
from tests.observability.tools import (
    demo_products,
    fast_prometheus_config,
    free_port,
    instant,
    observed_platform,
    place_order,
    running_alertmanager,
    signed_up,
)

TIME_SCALE = 60  # 1h -> 60 s, 5m -> 5 s (five scrapes), for: 2m -> 2 s
# Scrapes (and their timeout) and rule evaluations: a scrape that takes longer counts as the
# service being down (the availability SLI), so not less on a busy CI machine.
INTERVAL = "1s"
FAST = alertmanager.Timing(
    group_wait="1s",
    group_interval="1s",
    repeat_interval="1h",
    page_group_wait="1s",
    page_repeat_interval="1h",
    resolve_timeout="30s",
)
SANDBOX = f"http://127.0.0.1:{PAYMENT_SANDBOX.http_port}"
SLACK_PATH = "/services/T0EMPORIUM/B0ALERTS/e2e"  # an incoming webhook's path
PAGERDUTY_PATH = "/v2/enqueue"
PAGERDUTY_SEVERITIES = {"critical", "error", "warning", "info"}
T = TypeVar("T")

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]  # the platform's start included


@dataclass
class Receiver:
    """PagerDuty's Events API v2 and a Slack incoming webhook on one local port: it answers
    as they do (202 `{"status": "success", "dedup_key"}`; 200 `ok`), refuses (400) what
    they would refuse, and keeps every request it was sent."""

    pagerduty: list[dict[str, Any]] = field(default_factory=list)
    slack: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, path: str, body: bytes) -> tuple[int, dict[str, Any] | str]:
        try:
            event = json.loads(body)
        except ValueError:
            return self._refuse(f"{path}: not JSON: {body[:200]!r}")
        if path == PAGERDUTY_PATH:
            problem = _pagerduty_problem(event)
            if problem:
                return self._refuse(f"{path}: {problem}: {event}")
            with self.lock:
                self.pagerduty.append(event)
            return 202, {"status": "success", "message": "Event processed", **_dedup(event)}
        if path == SLACK_PATH:
            if not isinstance(event, dict) or not (event.get("text") or event.get("attachments")):
                return self._refuse(f"{path}: no text nor attachments: {event}")
            with self.lock:
                self.slack.append(event)
            return 200, "ok"
        return self._refuse(f"{path}: no such webhook")

    def _refuse(self, why: str) -> tuple[int, str]:
        with self.lock:
            self.refused.append(why)
        return 400, "invalid_payload"

    def events(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        with self.lock:
            return list(self.pagerduty), list(self.slack)


def _dedup(event: dict[str, Any]) -> dict[str, str]:
    return {"dedup_key": str(event["dedup_key"])} if event.get("dedup_key") else {}


def _pagerduty_problem(event: Any) -> str | None:
    """What PagerDuty's Events API v2 would refuse in `event`, if anything."""
    if not isinstance(event, dict) or not event.get("routing_key"):
        return "no routing_key"
    action = event.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        return f"event_action {action!r}"
    if action != "trigger":
        return None if event.get("dedup_key") else "no dedup_key to resolve"
    payload = event.get("payload")
    if not isinstance(payload, dict):
        return "no payload"
    if not payload.get("summary") or not payload.get("source"):
        return "payload without summary or source"
    if payload.get("severity") not in PAGERDUTY_SEVERITIES:
        return f"severity {payload.get('severity')!r}"
    return None


@contextlib.contextmanager
def receiving() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, answer = receiver.take(self.path, body)
            data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Shoppers:
    """Background traffic through the gateway: browsing always, orders while `ordering`."""

    def __init__(self, products: list[dict[str, Any]]) -> None:
        self.client = httpx.Client(base_url=GATEWAY, timeout=20.0)
        self.auth = signed_up(self.client, "alerts")
        self.products = products
        self.ordering = threading.Event()
        self.stop = threading.Event()
        self.answers: list[int] = []
        self.thread = threading.Thread(target=self._shop, daemon=True)

    def _shop(self) -> None:
        turn = 0
        while not self.stop.is_set():
            turn += 1
            with contextlib.suppress(httpx.HTTPError):
                product = self.products[turn % len(self.products)]
                self.client.get(f"/api/v1/products/{product['id']}")
                if self.ordering.is_set():
                    self.answers.append(
                        place_order(self.client, self.auth, product["id"]).status_code
                    )
            self.stop.wait(0.25)

    def best_stocked(self) -> dict[str, Any]:
        """The product with the most units left (the shopper keeps buying them all)."""

        def available(product: dict[str, Any]) -> int:
            stock = self.client.get(f"/api/v1/inventory/{product['sku']}")
            return int(stock.json().get("available", 0)) if stock.status_code == 200 else 0

        return max(self.products, key=available)

    def answered_since(self, start: int) -> list[int]:
        return self.answers[start:]


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 90.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.25)
    raise AssertionError(f"not seen in {timeout}s: {what}")


def fault(operation: str, count: int = 1_000_000) -> None:
    answer = httpx.put(
        f"{SANDBOX}/v1/sandbox/faults/{operation}", json={"mode": "fail", "count": count}
    )
    assert answer.status_code == 204, answer.text


def sagas(platform: Platform, *args: str) -> str:
    """`emporium sagas ...`, as the operator runs it against this platform."""
    done = subprocess.run(
        [sys.executable, "-m", "emporium", "sagas", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "EMPORIUM_DATA_DIR": str(platform.data_dir)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def parked(platform: Platform) -> list[str]:
    return re.findall(r"^(ord_\w+)\s+PARKED\b", sagas(platform, "list"), re.MULTILINE)


def summary(alert: str, service: str, sli: str | None = None) -> str:
    """The generated rule's summary annotation."""
    for document in rules.rule_files().values():
        for group in document["groups"]:
            for rule in group["rules"]:
                labels = rule.get("labels", {})
                if (
                    rule.get("alert") == alert
                    and labels.get("service") in (service, None)
                    and (sli is None or labels.get("sli") == sli)
                ):
                    return str(rule["annotations"]["summary"])
    raise KeyError((alert, service, sli))


def _first(
    events: list[dict[str, Any]], since: int, match: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    return next((e for e in events[since:] if match(e)), None)


def _page_of(service: str, sli: str) -> Callable[[dict[str, Any]], bool]:
    """A PagerDuty trigger of the fast burn-rate page of `service` with `sli` firing in it
    (Alertmanager's default details list the firing alerts' labels)."""
    prefix, label = f"SLOBurnRateFast {service}: ", f" - sli = {sli}\n"
    return lambda e: (
        e["event_action"] == "trigger"
        and e["payload"]["summary"].startswith(prefix)
        and label in e["payload"]["custom_details"].get("firing", "")
    )


def _resolve_of(trigger: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["event_action"] == "resolve" and e["dedup_key"] == trigger["dedup_key"]


def _slack_titled(messages: list[dict[str, Any]], since: int, title: str) -> dict[str, Any] | None:
    for message in messages[since:]:
        for attachment in message.get("attachments") or []:
            if attachment.get("title") == title:
                return {**attachment, "channel": message.get("channel")}
    return None


@dataclass
class Observed:
    platform: Platform
    prometheus: str
    receiver: Receiver
    routing_key: str
    shoppers: Shoppers
    logs: Path

    def dump(self) -> None:
        """What each part saw: for a failure's report."""
        print(self.platform.log()[-15000:])
        for name in ("alertmanager/alertmanager.log", "prometheus/prometheus.log"):
            print(f"--- {name}\n{(self.logs / name).read_text(errors='replace')[-5000:]}")
        with contextlib.suppress(httpx.HTTPError, AssertionError):
            print("--- firing:", [a["metric"] for a in instant(self.prometheus, "ALERTS")])
        pagerduty, slack = self.receiver.events()
        print("--- received:", json.dumps({"pagerduty": pagerduty, "slack": slack}, indent=1))
        print("--- refused:", self.receiver.refused)


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    tmp = tmp_path_factory.mktemp("alerts")
    secrets, rule_dir = tmp / "secrets", tmp / "rules"
    secrets.mkdir()
    rule_dir.mkdir()
    for name, document in rules.rule_files(time_scale=TIME_SCALE).items():
        (rule_dir / name).write_text(generate.render(document))
    routing_key = f"e2e{uuid.uuid4().hex}"  # a secret: written to a file, never in a config
    with receiving() as (receiver, receiver_url):
        (secrets / Path(alertmanager.PAGERDUTY_KEY_FILE).name).write_text(routing_key)
        (secrets / Path(alertmanager.SLACK_URL_FILE).name).write_text(receiver_url + SLACK_PATH)
        am_config = alertmanager.config(
            FAST, secrets=str(secrets), pagerduty_url=receiver_url + PAGERDUTY_PATH
        )
        am_port = free_port()
        config = fast_prometheus_config(INTERVAL, [str(rule_dir / "*.yml")])
        config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [
            f"127.0.0.1:{am_port}"
        ]
        env = {
            "EMPORIUM_GATEWAY_RATE_LIMIT": "100000",
            # A compensation that keeps failing parks after two tries, half a second apart.
            "EMPORIUM_ORDER_COMPENSATION_ATTEMPTS": "2",
            "EMPORIUM_ORDER_COMPENSATION_MAX_DELAY_SECONDS": "0.5",
        }
        with (
            running_alertmanager(tmp / "alertmanager", am_config, am_port),
            observed_platform(tmp, env, config, ["--rules.alert.resend-delay=1s"]) as (
                platform,
                url,
            ),
        ):
            shoppers = Shoppers(demo_products(httpx.Client(base_url=GATEWAY, timeout=20.0)))
            shoppers.thread.start()
            try:
                yield Observed(platform, url, receiver, routing_key, shoppers, tmp)
            finally:
                shoppers.stop.set()
                shoppers.thread.join(30)
                with contextlib.suppress(httpx.HTTPError):
                    httpx.delete(f"{SANDBOX}/v1/sandbox/faults", timeout=10)


def test_a_payment_outage_pages_and_tickets_then_resolves(observed: Observed) -> None:
    try:
        _outage_pages_tickets_and_resolves(observed)
    except BaseException:
        observed.dump()
        raise


def _outage_pages_tickets_and_resolves(observed: Observed) -> None:
    started = time.monotonic()

    def progress(what: str) -> None:
        print(f"[alerts] {time.monotonic() - started:5.1f}s {what}", flush=True)

    shoppers, receiver, platform = observed.shoppers, observed.receiver, observed.platform
    page_prefix = "SLOBurnRateFast payment: "  # the receiver's description template
    page_summary = page_prefix + summary("SLOBurnRateFast", "payment", "errors")
    ticket_channel = alertmanager.slack_channel(OWNERS["order"])

    # Healthy: orders are paid, Prometheus records payment's error ratio as 0, nobody is told.
    shoppers.ordering.set()
    ratio = f'{rules.ERROR_RATIO}5m{{service="payment",sli="errors"}}'
    eventually(
        lambda: (
            True
            if [r for r in instant(observed.prometheus, ratio) if r["value"][1] == "0"]
            else None
        ),
        "payment's error ratio recorded as 0 while orders are paid",
    )
    healthy = shoppers.answered_since(0)
    assert healthy
    assert all(code < 500 for code in healthy), healthy  # paid (or refused: out of stock)
    assert {201, 202} & set(healthy), healthy
    pagerduty, slack = receiver.events()
    assert _first(pagerduty, 0, _page_of("payment", "errors")) is None, pagerduty
    assert _slack_titled(slack, 0, "[FIRING] SagasParked order") is None, slack

    progress("healthy, nobody told")
    # The provider's outage begins with money movements: a checkout can be neither charged
    # nor voided, and its saga parks for the operator.
    shoppers.ordering.clear()
    fault("charge")
    fault("void")
    victim = place_order(shoppers.client, shoppers.auth, shoppers.best_stocked()["id"])
    assert victim.status_code in (201, 202), victim.text
    victim_id = victim.json()["id"]
    eventually(
        lambda: instant(observed.prometheus, "emporium_sagas_parked_total > 0") or None,
        "Prometheus seeing a saga parked",
    )
    progress("the victim's saga parked")
    # Then its token checks fail too: every new order fails (payment, order, gateway).
    fault("token")
    failing_from = len(shoppers.answers)
    shoppers.ordering.set()

    trigger = eventually(
        lambda: _first(receiver.events()[0], 0, _page_of("payment", "errors")),
        "a PagerDuty trigger of SLOBurnRateFast payment (errors)",
    )
    progress("PagerDuty trigger received")
    details = trigger["payload"]["custom_details"]
    # One incident per alert name and service: its summary is the rule's when it is the
    # only alert firing in it (another SLI of payment's burning too makes it generic).
    expected = page_summary if details["num_firing"] == "1" else page_prefix
    assert trigger["payload"]["summary"] == expected, trigger
    assert f"summary = {summary('SLOBurnRateFast', 'payment', 'errors')}\n" in details["firing"]
    assert trigger["routing_key"] == observed.routing_key  # read from the secret file
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["custom_details"]["runbook_url"] == rules.runbook_url(
        "SLOBurnRateFast"
    )
    assert re.fullmatch(r"[0-9a-f]{64}", trigger["dedup_key"]), trigger  # the group's key
    ticket = eventually(
        lambda: _slack_titled(receiver.events()[1], 0, "[FIRING] SagasParked order"),
        "a Slack message: [FIRING] SagasParked order",
    )
    progress("Slack ticket received")
    assert ticket["channel"] == ticket_channel
    assert summary("SagasParked", "order") in ticket["text"]
    assert rules.runbook_url("SagasParked") in ticket["text"]
    failed = shoppers.answered_since(failing_from)
    assert failed
    assert all(code >= 500 for code in failed), failed  # what the page is about

    # The provider recovers; the operator retries what parked (the victim, and any order
    # the background shopper had in flight).
    recovered_from = len(shoppers.answers)
    pagerduty, slack = receiver.events()
    # The incident stayed open and the ticket unresolved during the outage.
    assert _first(pagerduty, 0, _resolve_of(trigger)) is None, pagerduty
    assert _slack_titled(slack, 0, "[RESOLVED] SagasParked order") is None, slack
    assert httpx.delete(f"{SANDBOX}/v1/sandbox/faults", timeout=10).status_code == 204
    stuck = parked(platform)
    assert victim_id in stuck
    with ThreadPoolExecutor(4) as pool:
        retried = list(pool.map(lambda order_id: sagas(platform, "retry", order_id), stuck))
    assert all(order_id in out for order_id, out in zip(stuck, retried, strict=True)), retried
    progress(f"faults cleared, {len(stuck)} parked saga(s) retried")
    resolve = eventually(
        lambda: _first(receiver.events()[0], len(pagerduty), _resolve_of(trigger)),
        "the PagerDuty resolve of the same incident",
    )
    progress("PagerDuty resolve received")
    assert resolve["routing_key"] == observed.routing_key
    resolved = eventually(
        lambda: _slack_titled(receiver.events()[1], len(slack), "[RESOLVED] SagasParked order"),
        "a Slack message: [RESOLVED] SagasParked order",
    )
    progress("Slack resolved received")
    assert resolved["channel"] == ticket_channel
    assert parked(platform) == []
    recovered = shoppers.answered_since(recovered_from)
    assert recovered
    assert recovered[-1] < 500, recovered  # orders are taken again
    assert receiver.refused == []
    print(
        f"[alerts] page {trigger['dedup_key'][:12]} triggered and resolved on PagerDuty, "
        f"SagasParked firing and resolved on {ticket_channel}, "
        f"{time.monotonic() - started:.0f}s after the platform was observed"
    )
