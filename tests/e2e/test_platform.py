"""The platform as a reviewer tries it: up, all backends healthy, kill -9 one service and
see it come back, Ctrl-C, every port released."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from emporium.chassis.catalog import BACKENDS
from tests.e2e.platform import GATEWAY, port_is_free, ports, running_platform, wait_healthy

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]


def test_up_health_restart_and_clean_stop(tmp_path):
    with running_platform(tmp_path) as platform:
        health = wait_healthy()
        body = health.json()
        assert body["status"] == "ok"
        assert body["services"] == {b.name: "ok" for b in BACKENDS}
        assert httpx.get(f"{GATEWAY}/healthz").status_code == 200
        assert "/api/v1/health" in httpx.get(f"{GATEWAY}/openapi.json").json()["paths"]
        assert httpx.get(f"{GATEWAY}/healthz").headers["x-request-id"]

        kill_and_see_it_back(platform, "order")

        # A signed-in shopper stays signed in across a crash of auth: sessions live in
        # auth's kv, whose embedded store keeps an append-only file.
        shopper = {"email": "survivor@example.com", "password": "survivor password 1"}
        registered = httpx.post(f"{GATEWAY}/api/v1/auth/register", json={**shopper, "name": "S"})
        assert registered.status_code == 201, registered.text
        login = httpx.post(f"{GATEWAY}/api/v1/auth/login", json=shopper)
        bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
        assert httpx.get(f"{GATEWAY}/api/v1/users/me", headers=bearer).status_code == 200
        kill_and_see_it_back(platform, "auth")
        me = httpx.get(f"{GATEWAY}/api/v1/users/me", headers=bearer)
        assert (me.status_code, me.json().get("email")) == (200, shopper["email"]), me.text
        refreshed = httpx.post(
            f"{GATEWAY}/api/v1/auth/refresh",
            json={"refresh_token": login.json()["refresh_token"]},
        )
        assert refreshed.status_code == 200, refreshed.text

        platform.process.send_signal(signal.SIGINT)
        assert platform.process.wait(timeout=40) == 0
        assert "all services stopped" in platform.log()
    busy = [p for p in ports() if not port_is_free(p)]
    assert busy == []


def kill_and_see_it_back(platform, service):
    """`kill -9` the service; the supervisor restarts it and the platform is healthy again."""
    victim = platform.pid_of(service)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pid = platform.pid_of(service)
        answer = httpx.get(f"{GATEWAY}/api/v1/health", timeout=3)
        if pid != victim and answer.status_code == 200:
            break
        time.sleep(0.3)
    assert platform.pid_of(service) != victim, platform.log()
    assert wait_healthy(30).json()["services"][service] == "ok"


def test_bad_configuration_stops_a_service_with_one_clear_line(tmp_path):
    env = {
        **os.environ,
        "EMPORIUM_DATA_DIR": str(tmp_path),
        "EMPORIUM_ORDER_DATABASE_URL": "mysql://db/orders",
    }
    done = subprocess.run(
        [sys.executable, "-m", "emporium", "run", "order"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "EMPORIUM_ORDER_DATABASE_URL" in lines[0]
    assert "Traceback" not in done.stderr
