"""How a service's `app.py` plugs the event plumbing into its process.

Every producing service needs the same things: a started bus (closed at shutdown), the
outbox relay as a supervised background task, the housekeeping that prunes old event rows,
and a readiness check; every consuming service needs the bus and one background task per
consumer. Keeping that in one place means no service can forget the relay (events would pile
up unseen) or the pruning (tables would grow forever), or close the bus before the relay
stops.

With `EMPORIUM_OUTBOX_RELAY=off` (per service: `EMPORIUM_<SERVICE>_OUTBOX_RELAY`) the relay is
not started: log-tailing CDC (Debezium's outbox event router, docs/cdc.md) publishes the same
messages from the database's WAL instead. Nothing else changes: the outbox rows are written as
before, and consumers cannot tell the two apart. Only PostgreSQL has that log to tail: `off`
on another database stops the service at start (configuration error) rather than leaving its
events unpublished. The housekeeping runs either way (with CDC, outbox rows are pruned by age:
Debezium read them from the WAL, which keeps them for its slot whatever happens to the row).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from emporium.chassis.bus.base import EventBus
from emporium.chassis.bus.factory import open_bus
from emporium.chassis.catalog import service
from emporium.chassis.config import ConfigError
from emporium.chassis.db import Database, is_postgres
from emporium.chassis.events.consumer import EventConsumer
from emporium.chassis.events.housekeeping import EventHousekeeper
from emporium.chassis.events.relay import OutboxRelay
from emporium.chassis.runtime import ServiceApp

log = logging.getLogger(__name__)


async def open_service_bus(app: ServiceApp) -> EventBus:
    """The started bus of this service, closed after the background tasks have stopped."""
    bus = open_bus(app.settings.bus_url, client_id=f"emporium-{app.name}")
    await bus.start()
    app.on_stop.append(bus.close)
    return bus


def add_outbox_relay(app: ServiceApp, database: Database, bus: EventBus) -> OutboxRelay | None:
    """Run the outbox relay of `database` for the life of the process, unless the settings
    leave the outbox to CDC (then None: the rows wait for Debezium), and the housekeeping
    that prunes old outbox rows (and the inbox of the same database)."""
    if app.settings.outbox_relay == "off":
        if not is_postgres(database.engine):  # nothing could ever publish the rows
            var = f"{service(app.name).env_prefix}OUTBOX_RELAY (or EMPORIUM_OUTBOX_RELAY)"
            raise ConfigError(
                f"{var}: 'off' needs a PostgreSQL database (CDC tails its WAL), "
                f"not {database.engine.dialect.name}"
            )
        log.info("outbox relay off: the outbox is published by CDC", extra={"service": app.name})
        add_housekeeping(app, database, published_by_cdc=True)
        return None
    relay = OutboxRelay(database, bus, app.name)
    app.background.append(relay.run)
    add_housekeeping(app, database)
    return relay


def add_housekeeping(
    app: ServiceApp, database: Database, *, published_by_cdc: bool = False
) -> EventHousekeeper:
    """Prune `database`'s outbox and inbox after the configured retention (a relational
    service that consumes but never produces calls this itself)."""
    housekeeper = EventHousekeeper(
        database,
        app.name,
        retention=timedelta(hours=app.settings.event_retention_hours),
        published_by_cdc=published_by_cdc,
    )
    app.background.append(housekeeper.run)
    return housekeeper


def add_consumer(app: ServiceApp, consumer: EventConsumer) -> EventConsumer:
    """Run `consumer` for the life of the process (restarted by the runtime if it crashes)."""
    app.background.append(consumer.run)
    return consumer
