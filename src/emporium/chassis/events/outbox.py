"""Writing events: one outbox row in the caller's unit of work.

The row commits or rolls back with the state change it describes, so an event is published
if and only if its change happened (the relay publishes it later). Nothing here talks to the
bus: a handler never waits on the broker, and a broker outage never fails a use case.

When a transaction that staged an event commits, the relays of this process are told at once
(`on_outbox_commit`), so an event leaves within milliseconds instead of waiting for the next
poll, and an idle relay can poll rarely (the poll is only for rows other processes wrote).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Table
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from emporium.chassis.db import UnitOfWork
from emporium.chassis.events._trace import current_trace_headers
from emporium.chassis.events.envelope import JSON, Event, encode_data
from emporium.chassis.events.tables import OUTBOX_TABLE

SOURCE_PREFIX = "/emporium/"

_commit_listeners: set[Callable[[], None]] = set()


def on_outbox_commit(listener: Callable[[], None]) -> Callable[[], None]:
    """Call `listener` after every commit that wrote an outbox row in this process; returns
    the function that unregisters it. The listener must be quick and must not raise."""
    _commit_listeners.add(listener)
    return lambda: _commit_listeners.discard(listener)


def _committed(_session: Session) -> None:
    for listener in list(_commit_listeners):
        listener()


def _notify_after_commit(session: AsyncSession) -> None:
    sync_session = session.sync_session
    if not sa_event.contains(sync_session, "after_commit", _committed):
        sa_event.listen(sync_session, "after_commit", _committed)


class EventPayload(Protocol):
    """What `add_event` needs from a payload model (emporium.contracts.events.EventModel)."""

    TOPIC: str

    @classmethod
    def event_type(cls) -> str: ...

    def subject(self) -> str: ...

    def to_data(self) -> dict[str, Any]: ...


def source_for(service: str) -> str:
    """The CloudEvents `source` of a service's events (`/emporium/order`)."""
    return service if service.startswith("/") else f"{SOURCE_PREFIX}{service}"


def build_event(topic: str, payload: EventPayload, source: str) -> Event:
    """A new Event (fresh id, now, current trace context) for a payload model."""
    if topic != payload.TOPIC:
        raise ValueError(
            f"{type(payload).__name__} is published on {payload.TOPIC!r}, not {topic!r}"
        )
    trace = current_trace_headers()
    return Event(
        source=source_for(source),
        type=payload.event_type(),
        subject=payload.subject(),
        data=payload.to_data(),
        traceparent=trace.get("traceparent"),
        tracestate=trace.get("tracestate"),
    )


def outbox_row(topic: str, event: Event, aggregatetype: str | None = None) -> dict[str, Any]:
    """The outbox columns of `event` (Debezium outbox-router names plus our own)."""
    headers = {"ce_source": event.source, "content-type": event.datacontenttype}
    headers.update(event.trace_headers())
    return {
        "id": event.id,
        "topic": topic,
        "aggregatetype": aggregatetype or topic.split(".", 1)[0],
        "aggregateid": event.subject,
        "type": event.type,
        "payload": encode_data(event.data).decode(),
        "headers": json.dumps(headers, sort_keys=True),
        "created_at": event.time.astimezone(UTC),
    }


async def add_event(
    session: AsyncSession | UnitOfWork,
    topic: str,
    event: Event | EventPayload,
    *,
    source: str = "emporium",
    aggregatetype: str | None = None,
    table: Table = OUTBOX_TABLE,
) -> Event:
    """Stage `event` (an Event, or a payload model) on `topic` in the caller's transaction.

    `source` is the producing service (used only for models); `aggregatetype` defaults to the
    topic's first word (`order`). With an Event built by hand, trace headers it does not carry
    are taken from the current span. Returns the Event as it will be published.
    """
    if not isinstance(event, Event):
        event = build_event(topic, event, source)
    elif event.traceparent is None:
        trace = current_trace_headers()
        if trace:
            event = replace(
                event, traceparent=trace.get("traceparent"), tracestate=trace.get("tracestate")
            )
    db = session.session if isinstance(session, UnitOfWork) else session
    await db.execute(table.insert().values(**outbox_row(topic, event, aggregatetype)))
    _notify_after_commit(db)
    return event


def event_from_row(row: Any) -> Event:
    """Rebuild the Event of an outbox row (what the relay publishes)."""
    headers: dict[str, str] = json.loads(row.headers or "{}")
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return Event(
        id=row.id,
        source=headers.get("ce_source", SOURCE_PREFIX + str(row.aggregatetype)),
        type=row.type,
        subject=row.aggregateid,
        data={},  # the payload bytes are published as stored, never re-encoded
        time=created,
        datacontenttype=headers.get("content-type", JSON),
        traceparent=headers.get("traceparent"),
        tracestate=headers.get("tracestate"),
    )


def now_utc() -> datetime:
    return datetime.now(UTC)
