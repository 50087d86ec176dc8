"""Event bus throughput: messages published per second, and published->consumed per second.

Not a test: it prints numbers and asserts nothing. Runs the embedded SQLite log (in a
temporary directory, or --dir) and, when a Kafka URL is given or EMPORIUM_TEST_KAFKA_URL is
set, Kafka.

    python bench/bus_throughput.py [--messages N] [--batch B] [--kafka kafka://127.0.0.1:59092]

"publish" publishes N messages in batches of B (each `publish` waits for durability / the
broker's acks). "end-to-end" runs a producer and a consumer group member at once (the member
commits after each fetched batch) and counts N messages from the first publish until the
last one is consumed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

from emporium.chassis.bus.base import EventBus, Message
from emporium.chassis.bus.factory import open_bus

PAYLOAD = b'{"order_id": "0000", "total": "12.50", "items": [{"sku": "SKU-1", "qty": 1}]}'


def messages(topic: str, start: int, count: int) -> list[Message]:
    return [
        Message(topic, f"order-{i % 64}", PAYLOAD, (("ce_id", str(i).encode()),))
        for i in range(start, start + count)
    ]


async def publish_all(bus: EventBus, topic: str, total: int, batch: int) -> None:
    for start in range(0, total, batch):
        await bus.publish(messages(topic, start, min(batch, total - start)))


async def consume_all(bus: EventBus, topic: str, total: int) -> None:
    consumer = bus.consumer(f"bench-{uuid.uuid4().hex[:8]}", [topic])
    await consumer.start()
    try:
        seen = 0
        while seen < total:
            got = await consumer.fetch(max_records=500, timeout=0.5)
            for last_of_partition in {d.partition: d for d in got}.values():
                await consumer.commit(last_of_partition)
            seen += len(got)
    finally:
        await consumer.stop()


async def bench(label: str, url: str, total: int, batch: int) -> None:
    bus = open_bus(url, client_id="bench")
    await bus.start()
    try:
        topic = f"bench.publish.{uuid.uuid4().hex[:8]}"
        await bus.publish(messages(topic, 0, 1))  # creates the topic outside the timing
        t0 = time.perf_counter()
        await publish_all(bus, topic, total, batch)
        publish_s = time.perf_counter() - t0

        topic = f"bench.e2e.{uuid.uuid4().hex[:8]}"
        await bus.publish(messages(topic, 0, 1))
        t0 = time.perf_counter()
        await asyncio.gather(
            publish_all(bus, topic, total, batch), consume_all(bus, topic, total + 1)
        )
        e2e_s = time.perf_counter() - t0
    finally:
        await bus.close()
    print(
        f"{label:9s} {total} msgs, batch {batch}: publish {total / publish_s:10,.0f} msg/s   "
        f"published->consumed {total / e2e_s:10,.0f} msg/s"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--kafka", default=os.environ.get("EMPORIUM_TEST_KAFKA_URL", ""))
    parser.add_argument("--dir", type=Path, default=None, help="where the embedded log goes")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        await bench("embedded", f"embedded://{tmp}/bus.sqlite3", args.messages, args.batch)
    if args.kafka:
        await bench("kafka", args.kafka, args.messages, args.batch)
    else:
        print("kafka     skipped (no --kafka and no EMPORIUM_TEST_KAFKA_URL)")


if __name__ == "__main__":
    asyncio.run(main())
