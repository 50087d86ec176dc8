"""A client of the running platform for the chaos suite: the public REST API as shoppers and
the administrator use it, the sandbox provider's ledger, the services' pid files and the
failpoints (`emporium.chassis.failpoints`), so a test can kill a process exactly where it
wants and then check what the platform promised, from the outside."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from emporium.chassis import failpoints
from tests.e2e.platform import GATEWAY, Platform

API = f"{GATEWAY}/api/v1"
SANDBOX = "http://127.0.0.1:9070"
ADMIN_EMAIL = "admin@emporium.local"
ADMIN_PASSWORD = "chaos-admin-password-0123"
PASSWORD = "correct horse battery"
ADDRESS = {"line1": "1 Analytical St", "city": "London", "postal_code": "N1 9GU", "country": "GB"}
DEFINITE = (201, 202, 409)
T = TypeVar("T")


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 90.0) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            last = probe()
            if last:
                return last
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout}s: {what} (last: {last!r})")


@dataclass
class Answer:
    """The definite answer a checkout got (after retrying the same key through crashes)."""

    key: str
    status_code: int
    body: dict[str, Any]
    tries: int

    @property
    def order_id(self) -> str | None:
        return self.body.get("id") if self.status_code in (201, 202) else None


@dataclass
class Shopper:
    email: str
    headers: dict[str, str]
    answers: list[Answer] = field(default_factory=list)


class Shop:
    """Everything a chaos test does to and asks of the running platform."""

    def __init__(self, platform: Platform, admin: dict[str, str] | None = None) -> None:
        self.platform = platform
        self.client = httpx.Client(base_url=API, timeout=30.0)
        self.admin = admin or self.login(ADMIN_EMAIL, ADMIN_PASSWORD)

    def another(self) -> Shop:
        """A second client (its own connections) for another thread."""
        return Shop(self.platform, self.admin)

    def close(self) -> None:
        self.client.close()

    # -- identity -----------------------------------------------------------------------------

    def login(self, email: str, password: str) -> dict[str, str]:
        def attempt() -> dict[str, str] | None:
            answer = self.client.post("/auth/login", json={"email": email, "password": password})
            if answer.status_code != 200:
                return None
            return {"Authorization": f"Bearer {answer.json()['access_token']}"}

        return eventually(attempt, f"login of {email}")

    def shopper(self) -> Shopper:
        email = f"chaos-{uuid.uuid4().hex[:10]}@example.com"

        def register() -> bool:
            answer = self.client.post(
                "/auth/register", json={"email": email, "password": PASSWORD, "name": "Chaos"}
            )
            return answer.status_code in (201, 409)

        eventually(register, f"registration of {email}")
        return Shopper(email, self.login(email, PASSWORD))

    # -- catalog and stock --------------------------------------------------------------------

    def product(self, stock: int, price_minor: int = 1500) -> tuple[str, str]:
        sku = f"CHAOS-{uuid.uuid4().hex[:8].upper()}"
        body = {
            "sku": sku,
            "name": f"Scarce thing {sku}",
            "description": "there is never enough",
            "category": "chaos",
            "price_minor": price_minor,
            "currency": "USD",
        }
        created = self.client.post("/products", json=body, headers=self.admin)
        assert created.status_code == 201, created.text
        stocked = self.client.put(
            f"/inventory/{sku}",
            json={"on_hand": stock, "low_stock_threshold": 0},
            headers=self.admin,
        )
        assert stocked.status_code == 200, stocked.text
        return created.json()["id"], sku

    def stock(self, sku: str) -> dict[str, Any]:
        answer = self.client.get(f"/inventory/{sku}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    # -- orders -------------------------------------------------------------------------------

    def checkout(
        self,
        shopper: Shopper,
        product_id: str,
        token: str,
        quantity: int = 1,
        key: str | None = None,
        give_up_after: float = 120.0,
    ) -> Answer:
        """POST /orders, retrying the same Idempotency-Key through 5xx and dropped
        connections (processes being killed) until a definite answer."""
        key = key or str(uuid.uuid4())
        body = {
            "items": [{"product_id": product_id, "quantity": quantity}],
            "payment_token": token,
            "shipping_address": ADDRESS,
        }
        deadline = time.monotonic() + give_up_after
        tries = 0
        while True:
            tries += 1
            try:
                answer = self.client.post(
                    "/orders", json=body, headers={**shopper.headers, "Idempotency-Key": key}
                )
                if answer.status_code in DEFINITE:
                    found = Answer(key, answer.status_code, answer.json(), tries)
                    shopper.answers.append(found)
                    return found
                assert answer.status_code >= 500 or answer.status_code == 429, answer.text
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"no definite answer for key {key}"
            time.sleep(0.5)

    def order(self, shopper: Shopper, order_id: str) -> dict[str, Any]:
        answer = self.client.get(f"/orders/{order_id}", headers=shopper.headers)
        assert answer.status_code == 200, (order_id, answer.status_code, answer.text)
        return dict(answer.json())

    def sagas(self, *args: str) -> str:
        """`emporium sagas ...` against this platform, as an operator runs it."""
        env = {**os.environ, "EMPORIUM_DATA_DIR": str(self.platform.data_dir)}
        done = subprocess.run(
            [sys.executable, "-m", "emporium", "sagas", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def settled(self, shopper: Shopper, order_id: str, timeout: float = 150.0) -> dict[str, Any]:
        """The order once it is PAID or CANCELLED (what the sagas say, if it never is)."""

        def done() -> dict[str, Any] | None:
            answer = self.client.get(f"/orders/{order_id}", headers=shopper.headers)
            if answer.status_code != 200:
                return None
            order = dict(answer.json())
            return order if order["status"] in ("PAID", "CANCELLED") else None

        try:
            return eventually(done, f"order {order_id} settled", timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.sagas('list', '--state', 'ALL')}") from None

    def listed(self, shopper: Shopper) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = ""
        while True:
            params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
            page = self.client.get("/orders", params=params, headers=shopper.headers)
            assert page.status_code == 200, page.text
            items += page.json()["items"]
            cursor = page.json()["next_cursor"] or ""
            if not cursor:
                return items

    def notifications(self, shopper: Shopper) -> Counter[tuple[str, str]]:
        """(kind, order id) -> how many, from the subjects ("Order <id> received", ...)."""
        answer = self.client.get("/notifications", params={"limit": "100"}, headers=shopper.headers)
        assert answer.status_code == 200, answer.text
        counts: Counter[tuple[str, str]] = Counter()
        for item in answer.json()["items"]:
            words = [w for w in item["subject"].split() if w.startswith("ord_")]
            counts[(item["kind"], words[0] if words else "")] += 1
        return counts

    def sales(self) -> dict[str, Any]:
        answer = self.client.get("/analytics/sales", headers=self.admin)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    # -- the provider's books -----------------------------------------------------------------

    def ledger(self) -> dict[str, dict[str, Any]]:
        """The sandbox provider's entries by order id (payment-service sends it as reference)."""
        books = httpx.get(f"{SANDBOX}/v1/sandbox/ledger", timeout=10).json()["payments"]
        found: dict[str, dict[str, Any]] = {}
        for entry in books:
            if entry["reference"]:
                assert entry["reference"] not in found, f"two provider payments: {entry}"
                found[entry["reference"]] = entry
        return found

    def fault(self, operation: str, mode: str, count: int) -> None:
        answer = httpx.put(
            f"{SANDBOX}/v1/sandbox/faults/{operation}",
            json={"mode": mode, "count": count},
            timeout=10,
        )
        assert answer.status_code == 204, answer.text

    def clear_faults(self) -> None:
        assert httpx.delete(f"{SANDBOX}/v1/sandbox/faults", timeout=10).status_code == 204

    # -- processes ----------------------------------------------------------------------------

    def kill(self, service: str) -> int:
        """SIGKILL a service process (the supervisor restarts it); returns the pid."""
        pid = self.platform.pid_of(service)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return pid

    def arm(self, name: str) -> Path:
        return failpoints.arm(name, self.platform.data_dir)

    def kill_at(self, marker: Path, timeout: float = 60.0) -> int:
        """Wait until a process reached the armed failpoint, then SIGKILL it."""
        pid = eventually(
            lambda: int(marker.read_text()) if marker.exists() and marker.read_text() else None,
            f"failpoint {marker.name} reached",
            timeout,
        )
        os.kill(pid, signal.SIGKILL)
        return pid

    def metric(self, service_port: int, name: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{service_port}/metrics", timeout=5).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and not line.startswith("#")
        )
