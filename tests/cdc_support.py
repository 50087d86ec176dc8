"""Debezium tailing real outboxes, for the CDC tests (tests/adapters/test_cdc.py, the e2e).

`.ci/debezium.sh start` builds the launcher (`.ci/debezium/`: Debezium's embedded engine with
the PostgreSQL connector and the outbox event router) and exports its command as
`EMPORIUM_TEST_DEBEZIUM_LAUNCHER`; a test starts one launcher for the outboxes it needs with
`Debezium(...).start()`, which returns once every source's replication slot exists (from then
on every commit is in the slot's WAL, and what was committed before is in the snapshot), and
`stop()` ends the process and drops the slots and publications, so the databases can be
dropped. A launcher that dies fails the test with its log.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import asyncpg

from tests.backends import backend_url

START_CAP_SECONDS = 120.0
STOP_CAP_SECONDS = 30.0


def _name() -> str:
    return f"emporium_cdc_{uuid.uuid4().hex[:12]}"


def plain_dsn(url: str) -> str:
    """`postgresql+asyncpg://...` as asyncpg and the launcher take it (`postgresql://...`)."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@dataclass(frozen=True)
class OutboxSource:
    """One outbox to tail: a database URL, the schema holding `outbox`, and the replication
    slot and publication names (fresh per source, so tests never share a slot)."""

    url: str
    schema: str = "public"
    slot: str = field(default_factory=_name)
    publication: str = field(default_factory=_name)

    def argument(self) -> str:
        parts = urlsplit(plain_dsn(self.url))
        query = urlencode(
            {"schema": self.schema, "slot": self.slot, "publication": self.publication}
        )
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))

    @property
    def label(self) -> str:
        return f"{urlsplit(self.url).path.lstrip('/')}.{self.schema}"


class Debezium:
    """One launcher process publishing `sources` to the Kafka at `kafka_url`."""

    def __init__(self, sources: list[OutboxSource], kafka_url: str, state_dir: Path) -> None:
        self.command = backend_url("debezium")
        self.sources = sources
        self.kafka_url = kafka_url
        self.state_dir = state_dir
        self.log_path = state_dir / "debezium.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log_from = 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _spawn(self) -> subprocess.Popen[bytes]:
        """The launcher process, its output appended to `debezium.log` (a restart appends:
        only what it writes from here on counts for its readiness)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._log_from = len(self.log())
        with self.log_path.open("ab") as out:
            return subprocess.Popen(
                [
                    self.command,
                    "--kafka",
                    self.kafka_url,
                    "--state",
                    str(self.state_dir),
                    *(s.argument() for s in self.sources),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def start(self) -> None:
        """Run the launcher; return once every source is tailed (or fail with its log)."""
        self.process = self._spawn()
        deadline = time.monotonic() + START_CAP_SECONDS
        while not await self._tailing():
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the Debezium launcher exited ({self.process.returncode}):\n{self.log()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"Debezium not tailing in {START_CAP_SECONDS}s:\n{self.log()}")
            await asyncio.sleep(0.3)

    async def _tailing(self) -> bool:
        text = self.log()[self._log_from :]
        if not all(f"[debezium] tailing {s.label}" in text for s in self.sources):
            return False
        slots = await _query(
            self.sources[0].url, "SELECT slot_name FROM pg_replication_slots", fetch=True
        )
        return {s.slot for s in self.sources} <= {row["slot_name"] for row in slots}

    def assert_alive(self) -> None:
        assert self.process is not None
        assert self.process.poll() is None, f"the Debezium launcher died:\n{self.log()}"

    async def stop(self, *, drop_slots: bool = True) -> None:
        """End the launcher (offsets flushed); then, unless told not to, retire the slots."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.process.wait, STOP_CAP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                await asyncio.to_thread(self.process.wait)
        if self.process is not None:
            pidfile = Path(self.command).parent / "pids" / str(self.process.pid)
            pidfile.unlink(missing_ok=True)
        if drop_slots:
            for source in self.sources:
                await _retire(source)


async def _query(url: str, sql: str, *args: object, fetch: bool = False) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(plain_dsn(url))
    try:
        if fetch:
            return list(await conn.fetch(sql, *args))
        await conn.execute(sql, *args)
        return []
    finally:
        await conn.close()


async def _retire(source: OutboxSource) -> None:
    """Drop the source's slot (it would hold WAL forever and block DROP DATABASE) and its
    publication; the slot may stay active for a moment after the launcher exited."""
    deadline = time.monotonic() + STOP_CAP_SECONDS
    while True:
        rows = await _query(
            source.url,
            "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
            source.slot,
            fetch=True,
        )
        if not rows:
            break
        if not rows[0]["active"] or time.monotonic() > deadline:
            await _query(source.url, "SELECT pg_drop_replication_slot($1)", source.slot)
            break
        await asyncio.sleep(0.2)
    await _query(source.url, f'DROP PUBLICATION IF EXISTS "{source.publication}"')
