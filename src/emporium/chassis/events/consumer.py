"""Event consumers: decode, apply once (inbox), commit the offset, park poison messages.

For each delivery, in order:
1. Decode the CloudEvent. A record that is not one goes straight to the dead-letter topic.
2. Continue the producer's trace (headers) in a CONSUMER span and let the inbox run the
   handler at most once for (group, event id), committing its effect.
3. Commit the bus offset only after that commit, so a crash in between means a redelivery,
   which the inbox turns into a no-op.

A handler that raises is retried with exponential backoff (jittered) up to `max_attempts`;
then the original record (value and headers, plus `x-dlq-*` headers saying why) is published
to `<topic>.dlq` and its offset committed, so one bad message never blocks its partition.
One dead-letter topic per source topic (not per group): operators look in one place per
topic, and `x-dlq-group` says which consumer gave up. Failures of the infrastructure itself
(database or network unreachable, a dependency UNAVAILABLE) are not the message's fault: they
are never dead-lettered; the loop backs off and the message is delivered again.

Batches (`batch_handler`, store-idempotent consumers only): a consumer whose store is cheap
per statement but dear per write (analytics' OLAP parts) may take a whole fetched batch in
one call. Each event still gets its CONSUMER span in its producer's trace and its count; the
offsets are committed after the batch handler returned. If anything in the batch fails (a
record that is no CloudEvent, a poison payload, the store down), the same deliveries go
through the per-event path above, retries and dead letters included: the batch handler's
writes are idempotent, so what it applied before failing is applied again harmlessly.
`linger` seconds between polls that did not fill a batch let events gather into one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from opentelemetry import trace
from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError

from emporium.chassis.backoff import Backoff
from emporium.chassis.bus.base import Consumer, Delivery, EventBus, Message
from emporium.chassis.db import Database
from emporium.chassis.errors import DomainError, ErrorCode
from emporium.chassis.events._trace import extract_headers, tracer
from emporium.chassis.events.envelope import EnvelopeError, Event, format_time, from_delivery
from emporium.chassis.events.inbox import Handler, Inbox, RelationalInbox, StoreIdempotentInbox
from emporium.chassis.events.outbox import now_utc
from emporium.chassis.metrics import CONSUMER_LAG, EVENTS_CONSUMED
from emporium.chassis.runtime import StopSignal

log = logging.getLogger(__name__)

DLQ_SUFFIX = ".dlq"
LAG_REFRESH_SECONDS = 5.0
MAX_LOOP_BACKOFF_SECONDS = 15.0

PROCESSED = "processed"
DUPLICATE = "duplicate"
RETRIED = "retried"
DEAD_LETTERED = "dead_lettered"

# `async def handle_batch(events) -> None`: the effect of every event, in order, written
# idempotently (see StoreIdempotentInbox); raising sends the batch down the per-event path.
BatchHandler = Callable[[Sequence[Event]], Awaitable[None]]


def one_at_a_time(handle_batch: BatchHandler) -> Handler:
    """The per-event handler of a batch handler (for the per-event path): the same effect,
    written by the same code, for a batch of one."""

    async def handle(_: object, event: Event) -> None:
        await handle_batch([event])

    return handle


def dead_letter_topic(topic: str) -> str:
    """Where a consumer parks the records of `topic` it cannot handle."""
    return f"{topic}{DLQ_SUFFIX}"


def is_poison(exc: BaseException) -> bool:
    """Errors that no retry can fix: go to the dead letters at once."""
    if isinstance(exc, ValidationError):
        return True
    return isinstance(exc, DomainError) and exc.code == ErrorCode.INVALID_ARGUMENT


def is_transient(exc: BaseException) -> bool:
    """Errors of the infrastructure, not of the message: never dead-lettered."""
    if isinstance(exc, DomainError):
        return exc.code in (ErrorCode.UNAVAILABLE, ErrorCode.DEADLINE_EXCEEDED)
    return isinstance(exc, OperationalError | InterfaceError | ConnectionError | TimeoutError)


class EventConsumer:
    """One member of consumer group `group` of `service`, applying `handler` to `topics`."""

    def __init__(
        self,
        database: Database | None,
        bus: EventBus,
        service: str,
        group: str,
        topics: Sequence[str],
        handler: Handler,
        *,
        inbox: Inbox | None = None,
        max_attempts: int = 5,
        backoff: Backoff | None = None,
        batch_size: int = 100,
        poll_timeout: float = 0.5,
        batch_handler: BatchHandler | None = None,
        linger: float = 0.0,
    ) -> None:
        if inbox is None:
            inbox = RelationalInbox(database) if database is not None else StoreIdempotentInbox()
        if batch_handler is not None and not isinstance(inbox, StoreIdempotentInbox):
            raise ValueError(
                "a batch handler needs a store-idempotent consumer: an inbox row per event "
                "is one transaction per event anyway"
            )
        self.batch_handler = batch_handler
        self.linger = max(linger, 0.0)
        self.bus = bus
        self.service = service
        self.group = group
        self.topics = list(topics)
        self.handler = handler
        self.inbox = inbox
        self.max_attempts = max(max_attempts, 1)
        self.backoff = backoff or Backoff()
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self._consumer: Consumer | None = None
        self._lag_at = 0.0
        self._lag_label = self.topics[0] if len(self.topics) == 1 else "+".join(self.topics)

    async def start(self) -> None:
        if self._consumer is None:
            # The dead-letter topics too, now: creating one when the first poison message
            # arrives could fail (a broker down means too few for three replicas).
            await self.bus.ensure_topics([*self.topics, *map(dead_letter_topic, self.topics)])
            consumer = self.bus.consumer(self.group, self.topics)
            await consumer.start()
            self._consumer = consumer

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def run(self, stop: StopSignal) -> None:
        """Consume until `stop` (the runtime's background task form)."""
        failures = 0
        try:
            while not stop.is_set():
                try:
                    await self.start()
                    handled = await self.poll_once(stop)
                    failures = 0
                    if self.linger and handled < self.batch_size:
                        await stop.wait(self.linger)  # let the next batch gather
                except Exception:
                    failures += 1
                    delay = self.backoff.delay(failures)
                    log.warning(
                        "consumer round failed; redelivering after backoff",
                        exc_info=True,
                        extra={"group": self.group, "retry_in_s": delay},
                    )
                    await self._rewind()
                    await stop.wait(min(delay, MAX_LOOP_BACKOFF_SECONDS))
        finally:
            await self.close()

    async def poll_once(self, stop: StopSignal | None = None) -> int:
        """Fetch one batch, handle it in order, commit offsets; deliveries finished."""
        consumer = self._started()
        deliveries = await consumer.fetch(self.batch_size, self.poll_timeout)
        done: dict[tuple[str, int], Delivery] = {}
        handled = 0
        batched = len(deliveries) > 1 and await self._apply_batch(deliveries)
        try:
            for delivery in deliveries:
                if not batched and not await self.handle(delivery, stop):
                    break  # stopping in the middle of a backoff: leave the rest uncommitted
                done[(delivery.topic, delivery.partition)] = delivery
                handled += 1
        finally:  # even when a round fails, what was applied need not come again
            for last in done.values():
                await consumer.commit(last)
        if handled < len(deliveries):
            await consumer.seek_to_committed()
        await self._refresh_lag(consumer)
        return handled

    async def handle(self, delivery: Delivery, stop: StopSignal | None = None) -> bool:
        """Apply one delivery (or dead-letter it); False only if `stop` interrupted it."""
        try:
            event = from_delivery(delivery)
        except EnvelopeError as exc:
            await self.dead_letter(delivery, exc, attempts=0)
            return True
        attempt = 0
        while True:
            attempt += 1
            error = await self._attempt(delivery, event)
            if error is None:
                return True
            if is_poison(error):
                break
            if attempt >= self.max_attempts:
                if is_transient(error):
                    raise error  # not the message's fault: redeliver later, never park it
                break
            self._count(delivery, RETRIED)
            delay = self.backoff.delay(attempt)
            log.warning(
                "event handler failed; retrying",
                extra={
                    "group": self.group,
                    "event_id": event.id,
                    "attempt": attempt,
                    "retry_in_s": round(delay, 3),
                    "error": repr(error),
                },
            )
            if stop is not None:
                if await stop.wait(delay):
                    return False
            else:
                await asyncio.sleep(delay)
        await self.dead_letter(delivery, error, attempts=attempt)
        return True

    async def _apply_batch(self, deliveries: Sequence[Delivery]) -> bool:
        """The batch handler over every delivery, each in its own CONSUMER span; False (and
        nothing counted) when the batch must go through the per-event path instead."""
        if self.batch_handler is None:
            return False
        try:
            events = [from_delivery(delivery) for delivery in deliveries]
        except EnvelopeError:
            return False  # the per-event path dead-letters the record
        spans = [
            tracer().start_span(**self._span_args(delivery, event))
            for delivery, event in zip(deliveries, events, strict=True)
        ]
        try:
            await self.batch_handler(events)
        except Exception as exc:
            for span in spans:
                span.set_status(trace.Status(trace.StatusCode.ERROR, repr(exc)))
                span.end()
            log.info(
                "event batch failed; handling its events one by one",
                extra={"group": self.group, "events": len(events), "error": repr(exc)},
            )
            return False
        for span in spans:
            span.set_attribute("emporium.duplicate", False)
            span.end()
        for delivery in deliveries:
            self._count(delivery, PROCESSED)
        return True

    def _span_args(self, delivery: Delivery, event: Event) -> dict[str, Any]:
        """The CONSUMER span of one event, continuing its producer's trace."""
        return {
            "name": f"{delivery.topic} process",
            "context": extract_headers(event.header_map()),
            "kind": trace.SpanKind.CONSUMER,
            "attributes": {
                "messaging.system": "kafka",
                "messaging.destination.name": delivery.topic,
                "messaging.consumer.group.name": self.group,
                "messaging.message.id": event.id,
                "cloudevents.event_type": event.type,
                "cloudevents.event_subject": event.subject,
            },
        }

    async def _attempt(self, delivery: Delivery, event: Event) -> Exception | None:
        """Run the handler once through the inbox inside a CONSUMER span."""
        with tracer().start_as_current_span(
            **self._span_args(delivery, event),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                applied = await self.inbox.apply_once(self.group, event, self.handler)
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(trace.Status(trace.StatusCode.ERROR, repr(exc)))
                return exc
            span.set_attribute("emporium.duplicate", not applied)
            log.debug(  # inside the span: the line carries the producing request's trace id
                "event handled",
                extra={
                    "group": self.group,
                    "topic": delivery.topic,
                    "event_type": event.type,
                    "event_id": event.id,
                    "duplicate": not applied,
                },
            )
        self._count(delivery, PROCESSED if applied else DUPLICATE)
        return None

    async def dead_letter(self, delivery: Delivery, error: BaseException, attempts: int) -> None:
        """Publish the original record to `<topic>.dlq` with why and where it came from."""
        extra = (
            ("x-dlq-error", f"{type(error).__name__}: {error}"[:1000]),
            ("x-dlq-group", self.group),
            ("x-dlq-service", self.service),
            ("x-dlq-topic", delivery.topic),
            ("x-dlq-partition", str(delivery.partition)),
            ("x-dlq-offset", str(delivery.offset)),
            ("x-dlq-attempts", str(attempts)),
            ("x-dlq-time", format_time(now_utc())),
        )
        headers = delivery.headers + tuple((k, v.encode()) for k, v in extra)
        message = Message(dead_letter_topic(delivery.topic), delivery.key, delivery.value, headers)
        await self.bus.publish([message])
        log.error(
            "event parked in the dead-letter topic",
            extra={
                "group": self.group,
                "topic": delivery.topic,
                "offset": delivery.offset,
                "dlq": message.topic,
                "error": repr(error),
            },
        )
        self._count(delivery, DEAD_LETTERED)

    def _count(self, delivery: Delivery, outcome: str) -> None:
        EVENTS_CONSUMED.labels(self.service, self.group, delivery.topic, outcome).inc()

    async def _refresh_lag(self, consumer: Consumer) -> None:
        now = time.monotonic()
        if now - self._lag_at < LAG_REFRESH_SECONDS:
            return
        self._lag_at = now
        try:
            lag = await consumer.lag()
        except Exception:
            log.debug("consumer lag unavailable", exc_info=True)
            return
        CONSUMER_LAG.labels(self.service, self.group, self._lag_label).set(lag)

    async def _rewind(self) -> None:
        if self._consumer is None:
            return
        try:
            await self._consumer.seek_to_committed()
        except Exception:
            log.warning("cannot rewind the consumer; restarting it", exc_info=True)
            await self.close()

    def _started(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("EventConsumer.poll_once before start()")
        return self._consumer
