"""Event bus throughput: messages published per second, and published->consumed per second.

Not a test: it prints numbers and asserts nothing. Runs the embedded SQLite log (in a
temporary directory, or --dir) and, when a Kafka URL is given or EMPORIUM_TEST_KAFKA_URL is
set, Kafka. One JSON line per measurement (for machines), then one line per adapter (for
people).

    python bench/bus_throughput.py [--messages N] [--batch B] [--kafka kafka://127.0.0.1:59092]

"publish" publishes N messages in batches of B (each `publish` waits for durability / the
broker's acks). "end-to-end" runs a producer and one consumer group member at once (the
member commits the last delivery of each partition after every fetched batch, as the
consumer runner does) and times N messages from the first publish until the last one is
consumed; the member has joined its group and read a first message before the clock starts,
so Kafka's group join is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

from _util import machine
from emporium.chassis.bus.base import Consumer, EventBus, Message
from emporium.chassis.bus.factory import open_bus

PAYLOAD = b'{"order_id": "0000", "total": "12.50", "items": [{"sku": "SKU-1", "qty": 1}]}'
KEYS = 64


def messages(topic: str, start: int, count: int) -> list[Message]:
    return [
        Message(topic, f"order-{i % KEYS}", PAYLOAD, (("ce_id", str(i).encode()),))
        for i in range(start, start + count)
    ]


async def publish_all(bus: EventBus, topic: str, total: int, batch: int) -> None:
    for start in range(0, total, batch):
        await bus.publish(messages(topic, start, min(batch, total - start)))


async def consume(consumer: Consumer, total: int) -> None:
    seen = 0
    while seen < total:
        got = await consumer.fetch(max_records=500, timeout=0.5)
        for last_of_partition in {(d.topic, d.partition): d for d in got}.values():
            await consumer.commit(last_of_partition)
        seen += len(got)


def emit(adapter: str, metric: str, total: int, batch: int, seconds: float) -> float:
    rate = total / seconds
    print(
        json.dumps(
            {
                "bench": "bus_throughput",
                "adapter": adapter,
                "metric": metric,
                "messages": total,
                "batch": batch,
                "seconds": round(seconds, 4),
                "messages_per_second": round(rate, 1),
            }
        ),
        flush=True,
    )
    return rate


async def bench(adapter: str, url: str, total: int, batch: int) -> None:
    bus = open_bus(url, client_id="bench")
    await bus.start()
    try:
        topic = f"bench.publish.{uuid.uuid4().hex[:8]}"
        await bus.publish(messages(topic, 0, 1))  # creates the topic outside the timing
        t0 = time.perf_counter()
        await publish_all(bus, topic, total, batch)
        publish_rate = emit(adapter, "publish", total, batch, time.perf_counter() - t0)

        topic = f"bench.e2e.{uuid.uuid4().hex[:8]}"
        await bus.publish(messages(topic, 0, 1))
        consumer = bus.consumer(f"bench-{uuid.uuid4().hex[:8]}", [topic])
        await consumer.start()
        try:
            await consume(consumer, 1)  # joined and reading before the clock starts
            t0 = time.perf_counter()
            await asyncio.gather(publish_all(bus, topic, total, batch), consume(consumer, total))
            e2e_rate = emit(adapter, "end_to_end", total, batch, time.perf_counter() - t0)
        finally:
            await consumer.stop()
    finally:
        await bus.close()
    print(
        f"{adapter:9s} {total} msgs, batch {batch}: publish {publish_rate:10,.0f} msg/s   "
        f"published->consumed {e2e_rate:10,.0f} msg/s",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--kafka", default=os.environ.get("EMPORIUM_TEST_KAFKA_URL", ""))
    parser.add_argument("--dir", type=Path, default=None, help="where the embedded log goes")
    args = parser.parse_args()

    print(f"# event bus throughput on {machine()}", flush=True)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        await bench("embedded", f"embedded://{tmp}/bus.sqlite3", args.messages, args.batch)
    if args.kafka:
        await bench("kafka", args.kafka, args.messages, args.batch)
    else:
        print("kafka     skipped (no --kafka and no EMPORIUM_TEST_KAFKA_URL)")


if __name__ == "__main__":
    asyncio.run(main())
