"""The real sandbox payment provider (`emporium.sandbox.payments`) served over HTTP on a free
loopback port inside the test's event loop, for service tests of payment and order: the code
under test talks to it exactly as it talks to the provider process of `emporium up`."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from emporium.sandbox.payments.app import create_app
from emporium.sandbox.payments.ledger import Ledger


@dataclass
class Sandbox:
    url: str
    ledger: Ledger

    async def fault(self, operation: str, mode: str, count: int) -> None:
        async with httpx.AsyncClient(base_url=self.url) as client:
            answer = await client.put(
                f"/v1/sandbox/faults/{operation}", json={"mode": mode, "count": count}
            )
            answer.raise_for_status()

    def entry(self, payment_id: str) -> dict[str, Any] | None:
        found = self.ledger.lookup(payment_id)
        return found.view() if found else None

    def entries(self) -> list[dict[str, Any]]:
        return [e.view() for e in self.ledger.entries()]


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handling (pytest owns the signals)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running_sandbox(tmp_path: Path, hang_seconds: float = 1.5) -> AsyncIterator[Sandbox]:
    ledger = Ledger(tmp_path / "payment-sandbox.sqlite3", hang_seconds=hang_seconds)
    port = _free_port()
    server = _QuietServer(
        uvicorn.Config(
            create_app(ledger), host="127.0.0.1", port=port, log_config=None, access_log=False
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield Sandbox(f"http://127.0.0.1:{port}", ledger)
    finally:
        server.should_exit = True
        await task
        ledger.close()
