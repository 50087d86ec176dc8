"""The CI Kafka cluster's nodes, to stop and start from a test.

`.ci/kafka-cluster.sh` (run by `.ci/backends.sh`) leaves, per node, `node-N/start` (starts
the node in the background and writes `node-N/pid`), `node-N/pid` and `node-N/port` under
the directory it exports as `EMPORIUM_TEST_KAFKA_CLUSTER_DIR`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.backends import require_real_backends

CLUSTER_DIR_VAR = "EMPORIUM_TEST_KAFKA_CLUSTER_DIR"
STOP_CAP_SECONDS = 60.0
START_CAP_SECONDS = 240.0  # a JVM start on a loaded 2-core machine took 84 s once


@dataclass(frozen=True)
class KafkaNode:
    node_id: int
    home: Path

    @property
    def port(self) -> int:
        return int((self.home / "port").read_text())

    def pid(self) -> int:
        return int((self.home / "pid").read_text())

    def alive(self) -> bool:
        try:
            os.kill(self.pid(), 0)
        except ProcessLookupError:
            return False
        return True

    async def stop(self, sig: signal.Signals) -> None:
        """Send `sig` and wait until the process is gone."""
        pid = self.pid()
        os.kill(pid, sig)
        deadline = time.monotonic() + STOP_CAP_SECONDS
        while self.alive():
            assert time.monotonic() < deadline, f"kafka node {self.node_id} ignored {sig.name}"
            await asyncio.sleep(0.1)

    async def start(self) -> None:
        """Run the node's start script and wait until its client port answers."""
        script = await asyncio.create_subprocess_exec(str(self.home / "start"))
        assert await script.wait() == 0, f"{self.home / 'start'} failed"
        deadline = time.monotonic() + START_CAP_SECONDS
        while not await _port_open(self.port):
            assert self.alive(), f"kafka node {self.node_id} exited at start (see its log)"
            assert time.monotonic() < deadline, f"kafka node {self.node_id} did not start"
            await asyncio.sleep(0.2)


async def _port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


def cluster_nodes() -> list[KafkaNode]:
    """The nodes of the CI cluster, or skip (fail in CI) when it is not there."""
    home = os.environ.get(CLUSTER_DIR_VAR, "")
    nodes = sorted(Path(home).glob("node-*")) if home else []
    if len(nodes) >= 3:
        return [KafkaNode(int(p.name.split("-")[1]), p) for p in nodes]
    reason = f"no Kafka cluster to stop nodes of: set {CLUSTER_DIR_VAR} (.ci/backends.sh start)"
    if require_real_backends():
        pytest.fail(f"EMPORIUM_REQUIRE_REAL_BACKENDS=1 but {reason}")
    pytest.skip(reason)
