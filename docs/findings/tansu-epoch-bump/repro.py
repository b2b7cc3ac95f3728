#!/usr/bin/env python3
"""Standalone reproduction: an idempotent producer whose request timed out
can never produce again.

An idempotent producer (librdkafka through confluent-kafka) sends through a
small Kafka-frame-aware TCP proxy at the address the broker advertises. The
proxy holds the broker's replies for a while, so a produce request times
out on the client (socket.timeout.ms). librdkafka then has to bump the
producer's epoch (KIP-360: InitProducerId with the current producer id and
epoch) before it may send again, because the timed-out batch may or may not
have been written. A broker that supports this lets the producer go on; the
script then sends more records and exits 0 if they are acknowledged, 1 if
none is.

    pip install confluent-kafka
    repro.py --broker 127.0.0.1:9095 --advertised 127.0.0.1:29092
"""

import argparse
import asyncio
import struct
import sys
import threading
import time
import uuid

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic


class Proxy:
    """Forwards whole Kafka frames; holds replies while `hold` is set."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.hold = threading.Event()

    def start(self, address):
        """Listen at `address` (exit 2 if taken), then serve on a thread."""
        host, port = address.rsplit(":", 1)
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(asyncio.start_server(self.pipe, host, int(port)))
        except OSError as e:
            print(f"cannot listen at {address} (the advertised address): {e}", file=sys.stderr)
            sys.exit(2)
        threading.Thread(target=loop.run_forever, daemon=True).start()

    async def pipe(self, client_r, client_w):
        host, port = self.upstream.rsplit(":", 1)
        try:
            server_r, server_w = await asyncio.open_connection(host, int(port))
        except OSError:
            client_w.close()
            return

        async def frames(reader):
            while True:
                head = await reader.readexactly(4)
                (size,) = struct.unpack(">i", head)
                yield head + await reader.readexactly(size)

        async def forward(reader, writer, holding):
            async for frame in frames(reader):
                while holding and self.hold.is_set():
                    await asyncio.sleep(0.01)
                writer.write(frame)
                await writer.drain()

        tasks = [
            asyncio.ensure_future(forward(client_r, server_w, False)),
            asyncio.ensure_future(forward(server_r, client_w, True)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        client_w.close()
        server_w.close()


def send(producer, topic, key, timeout_s=10.0):
    """Produce one record and wait for its delivery report: None or the error."""
    result = {}
    producer.produce(topic, key=key, value=key, on_delivery=lambda err, msg: result.setdefault("err", err))
    deadline = time.monotonic() + timeout_s
    while "err" not in result and time.monotonic() < deadline:
        producer.poll(0.05)
    return result.get("err", "no delivery report")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--broker", required=True, help="the broker's own listener")
    ap.add_argument("--advertised", required=True, help="the address the broker advertises")
    ap.add_argument("--hold", type=float, default=3.0, help="seconds the replies are held")
    args = ap.parse_args()
    start = time.monotonic()

    def log(msg):
        print(f"{time.monotonic() - start:6.1f}s  {msg}", flush=True)

    proxy = Proxy(args.broker)
    proxy.start(args.advertised)

    topic = f"epoch-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": args.advertised})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result()
    producer = Producer({
        "bootstrap.servers": args.advertised,
        "enable.idempotence": True,
        "acks": "all",
        "socket.timeout.ms": 500,
        "message.timeout.ms": 2000,
        "linger.ms": 5,
    })
    log(f"topic {topic}; first record: {send(producer, topic, 'before') or 'acknowledged'}")

    proxy.hold.set()
    log(f"the proxy holds the broker's replies for {args.hold:.1f} s")
    held = {}
    producer.produce(topic, key="held", value="held", on_delivery=lambda err, msg: held.setdefault("err", err))
    t_end = time.monotonic() + args.hold
    while time.monotonic() < t_end:
        producer.poll(0.05)
    proxy.hold.clear()
    while "err" not in held and time.monotonic() < t_end + 5:
        producer.poll(0.05)
    log(f"the record sent while replies were held: {held.get('err') or 'acknowledged'}")

    acked = 0
    for i in range(5):
        err = send(producer, topic, f"after-{i}")
        log(f"record after-{i}: {err or 'acknowledged'}")
        acked += err is None
    try:
        producer.flush(1)
    except KafkaException as e:
        log(f"flush: {e}")
    admin.delete_topics([topic])
    log(f"{acked} of 5 records acknowledged after the timeout")
    return 0 if acked else 1


if __name__ == "__main__":
    sys.exit(main())
