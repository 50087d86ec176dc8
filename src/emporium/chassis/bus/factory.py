"""Pick the bus adapter from the configured URL, so services never name an adapter.

`embedded:///abs/path/bus.sqlite3` or `embedded://rel/path/bus.sqlite3` -> the SQLite log;
`kafka://host:port[,host2:port]` -> Kafka. Optional query on either:
`?partitions=6` for the topics the bus creates (default 3); on the embedded log
`&retention_hours=168` (how long messages are kept, default 7 days, like Kafka's); on Kafka
`&replication_factor=3&min_insync_replicas=2` (the defaults) and `&create_topics=false` to
only check that the topics exist (see `kafka_topics`; retention is the broker's topic
configuration there). The bus is returned not yet started: call `start()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from emporium.chassis.bus.base import EventBus
from emporium.chassis.config import url_path

if TYPE_CHECKING:  # the Kafka modules (and aiokafka) are imported only for a kafka:// URL
    from emporium.chassis.bus.kafka_topics import TopicSpec


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
        from emporium.chassis.bus.kafka import KafkaBus

        if not parts.netloc:
            raise ValueError(f"kafka bus URL without bootstrap servers: {url!r}")
        return KafkaBus(parts.netloc, client_id=client_id, topics=_topic_spec(query, url))
    raise ValueError(
        f"unknown event bus URL scheme {parts.scheme or '(none)'!r} in {url!r}; "
        "expected embedded or kafka"
    )


def _topic_spec(query: dict[str, str], url: str) -> TopicSpec:
    """The Kafka topic spec of a bus URL's query (defaults: the seed's production values)."""
    from emporium.chassis.bus.kafka_topics import TopicSpec

    default = TopicSpec()
    flag = query.get("create_topics", "true").lower()
    if flag not in _BOOLEANS:
        raise ValueError(f"create_topics must be true or false in {url!r}")
    try:
        return TopicSpec(
            partitions=int(query.get("partitions", default.partitions)),
            replication_factor=int(query.get("replication_factor", default.replication_factor)),
            min_insync_replicas=int(query.get("min_insync_replicas", default.min_insync_replicas)),
            create=_BOOLEANS[flag],
        )
    except ValueError as exc:
        raise ValueError(f"invalid Kafka topic settings in {url!r}: {exc}") from None


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
