"""Pick the bus adapter from the configured URL, so services never name an adapter.

`embedded:///abs/path/bus.sqlite3` or `embedded://rel/path/bus.sqlite3` -> the SQLite log;
`kafka://host:port[,host2:port]` -> Kafka (optional query: `?partitions=6&replication_factor=3`
for the topics the bus creates). The bus is returned not yet started: call `start()`.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from emporium.chassis.bus.base import EventBus
from emporium.chassis.config import url_path


def open_bus(url: str, client_id: str) -> EventBus:
    """The (not yet started) bus for `url`; `client_id` names this process to the broker."""
    parts = urlsplit(url)
    if parts.scheme == "embedded":
        from emporium.chassis.bus.embedded import EmbeddedBus

        return EmbeddedBus(url_path(url.split("?", 1)[0]))
    if parts.scheme == "kafka":
        from emporium.chassis.bus.kafka import DEFAULT_PARTITIONS, KafkaBus

        if not parts.netloc:
            raise ValueError(f"kafka bus URL without bootstrap servers: {url!r}")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        return KafkaBus(
            parts.netloc,
            client_id=client_id,
            partitions=int(query.get("partitions", DEFAULT_PARTITIONS)),
            replication_factor=int(query.get("replication_factor", 1)),
        )
    raise ValueError(
        f"unknown event bus URL scheme {parts.scheme or '(none)'!r} in {url!r}; "
        "expected embedded or kafka"
    )
