"""Pick the bus adapter from the configured URL, so services never name an adapter.

`embedded:///abs/path/bus.sqlite3` or `embedded://rel/path/bus.sqlite3` -> the SQLite log;
`kafka://host:port[,host2:port]` -> Kafka. Optional query on either:
`?partitions=6` for the topics the bus creates (default 3); on the embedded log
`&retention_hours=168` (how long messages are kept, default 7 days, like Kafka's); on Kafka
`&replication_factor=3` (retention is the broker's topic configuration there). The bus is
returned not yet started: call `start()`.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from emporium.chassis.bus.base import EventBus
from emporium.chassis.config import url_path


def open_bus(url: str, client_id: str) -> EventBus:
    """The (not yet started) bus for `url`; `client_id` names this process to the broker."""
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme == "embedded":
        from emporium.chassis.bus.embedded import (
            DEFAULT_PARTITIONS,
            DEFAULT_RETENTION_SECONDS,
            EmbeddedBus,
        )

        hours = float(query.get("retention_hours", DEFAULT_RETENTION_SECONDS / 3600))
        return EmbeddedBus(
            url_path(url.split("?", 1)[0]),
            partitions=int(query.get("partitions", DEFAULT_PARTITIONS)),
            retention_seconds=hours * 3600,
        )
    if parts.scheme == "kafka":
        from emporium.chassis.bus.kafka import DEFAULT_PARTITIONS as KAFKA_PARTITIONS
        from emporium.chassis.bus.kafka import KafkaBus

        if not parts.netloc:
            raise ValueError(f"kafka bus URL without bootstrap servers: {url!r}")
        return KafkaBus(
            parts.netloc,
            client_id=client_id,
            partitions=int(query.get("partitions", KAFKA_PARTITIONS)),
            replication_factor=int(query.get("replication_factor", 1)),
        )
    raise ValueError(
        f"unknown event bus URL scheme {parts.scheme or '(none)'!r} in {url!r}; "
        "expected embedded or kafka"
    )
