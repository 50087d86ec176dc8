"""The runtime's own health metrics: event-loop lag and the database pool gauges, which
the dashboards plot (deploy/observability/grafana)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from prometheus_client import REGISTRY

from emporium.chassis.db import Database
from emporium.chassis.runtime import StopSignal, watch_loop_lag


def sample(name: str, service: str) -> float:
    value = REGISTRY.get_sample_value(name, {"service": service})
    return 0.0 if value is None else value


async def test_loop_lag_records_the_time_blocking_code_held_the_loop() -> None:
    stop = StopSignal()
    probe = asyncio.create_task(watch_loop_lag("lagtest", stop, interval=0.05))
    await asyncio.sleep(0.12)
    time.sleep(0.3)  # noqa: ASYNC251 - the blocking code the probe must see
    await asyncio.sleep(0.12)
    stop.set()
    await asyncio.wait_for(probe, 2)
    assert sample("emporium_event_loop_lag_seconds_count", "lagtest") >= 2
    assert sample("emporium_event_loop_lag_seconds_sum", "lagtest") >= 0.25
    # the 0.5 s bucket holds it, the 0.1 s bucket does not
    over = REGISTRY.get_sample_value(
        "emporium_event_loop_lag_seconds_bucket", {"service": "lagtest", "le": "0.1"}
    )
    total = sample("emporium_event_loop_lag_seconds_count", "lagtest")
    assert over is not None
    assert over < total


async def test_pool_gauges_follow_checked_out_connections(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/pool.sqlite3", service="pooltest")
    try:
        assert sample("emporium_db_pool_connections_in_use", "pooltest") == 0
        assert sample("emporium_db_pool_size", "pooltest") >= 1
        async with db.session() as session:
            await session.connection()
            assert sample("emporium_db_pool_connections_in_use", "pooltest") == 1
        assert sample("emporium_db_pool_connections_in_use", "pooltest") == 0
    finally:
        await db.close()
