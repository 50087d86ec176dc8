"""How a service's `app.py` plugs the event plumbing into its process.

Every producing service needs the same things: a started bus (closed at shutdown), the
outbox relay as a supervised background task, the housekeeping that prunes old event rows,
and a readiness check; every consuming service needs the bus and one background task per
consumer. Keeping that in one place means no service can forget the relay (events would pile
up unseen) or the pruning (tables would grow forever), or close the bus before the relay
stops.
"""

from __future__ import annotations

from datetime import timedelta

from emporium.chassis.bus.base import EventBus
from emporium.chassis.bus.factory import open_bus
from emporium.chassis.db import Database
from emporium.chassis.events.consumer import EventConsumer
from emporium.chassis.events.housekeeping import EventHousekeeper
from emporium.chassis.events.relay import OutboxRelay
from emporium.chassis.runtime import ServiceApp


async def open_service_bus(app: ServiceApp) -> EventBus:
    """The started bus of this service, closed after the background tasks have stopped."""
    bus = open_bus(app.settings.bus_url, client_id=f"emporium-{app.name}")
    await bus.start()
    app.on_stop.append(bus.close)
    return bus


def add_outbox_relay(app: ServiceApp, database: Database, bus: EventBus) -> OutboxRelay:
    """Run the outbox relay of `database` for the life of the process, and the housekeeping
    that prunes its published rows (and the inbox of the same database)."""
    relay = OutboxRelay(database, bus, app.name)
    app.background.append(relay.run)
    add_housekeeping(app, database)
    return relay


def add_housekeeping(app: ServiceApp, database: Database) -> EventHousekeeper:
    """Prune `database`'s outbox and inbox after the configured retention (a relational
    service that consumes but never produces calls this itself)."""
    housekeeper = EventHousekeeper(
        database, app.name, retention=timedelta(hours=app.settings.event_retention_hours)
    )
    app.background.append(housekeeper.run)
    return housekeeper


def add_consumer(app: ServiceApp, consumer: EventConsumer) -> EventConsumer:
    """Run `consumer` for the life of the process (restarted by the runtime if it crashes)."""
    app.background.append(consumer.run)
    return consumer
