#!/usr/bin/env python3
"""Standalone reproduction: a consumer is handed an offset at or below one it
already got, with no rebalance in between.

A producer writes steadily to a 3-partition topic; one group consumer
(librdkafka through confluent-kafka) reads it and commits now and then. Both
talk to the broker through a small TCP proxy at the address the broker
advertises. Every 0.5-2 s the proxy switches at random between: cutting every
open connection, dropping 20% of the broker's replies (cutting that
connection), holding all replies, and passing everything. Within one
assignment (between two rebalance callbacks) a consumer must get each
partition's offsets in increasing order. At the end the script reads the
whole topic back once, through a calm proxy, to check the stored log.

Exits 1 if the consumer ever went back within an assignment, else 0.

    pip install confluent-kafka
    repro.py --broker 127.0.0.1:9096 --advertised 127.0.0.1:19192 --seconds 90
"""

import argparse
import asyncio
import random
import sys
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 3


class Proxy:
    """Forwards bytes both ways; the faults act on the broker's replies."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.writers = set()
        self.loop = None
        self.lose = 0.0
        self.hold = False

    def start(self, address):
        host, port = address.rsplit(":", 1)
        self.loop = asyncio.new_event_loop()
        try:
            self.loop.run_until_complete(asyncio.start_server(self.pipe, host, int(port)))
        except OSError as e:
            print(f"cannot listen at {address} (the advertised address): {e}", file=sys.stderr)
            sys.exit(2)
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def cut_all(self):
        def cut():
            for w in list(self.writers):
                w.transport.abort()
        self.loop.call_soon_threadsafe(cut)

    async def pipe(self, client_r, client_w):
        host, port = self.upstream.rsplit(":", 1)
        try:
            server_r, server_w = await asyncio.open_connection(host, int(port))
        except OSError:
            client_w.close()
            return
        self.writers |= {client_w, server_w}

        async def forward(reader, writer, from_server):
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                while from_server and self.hold:
                    await asyncio.sleep(0.01)
                if from_server and random.random() < self.lose:
                    return
                writer.write(data)
                await writer.drain()

        tasks = [
            asyncio.ensure_future(forward(client_r, server_w, False)),
            asyncio.ensure_future(forward(server_r, client_w, True)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        self.writers -= {client_w, server_w}
        client_w.close()
        server_w.close()


def produce(bootstrap, topic, stop):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    i = 0
    while not stop.is_set():
        p.produce(topic, key=f"k{i}", value=f"v{i}")
        p.poll(0)
        i += 1
        time.sleep(0.01)
    p.flush(5)


def read_back(bootstrap, topic):
    """The whole topic once, from offset 0: (last offset per partition, steps back)."""
    r = Consumer({"bootstrap.servers": bootstrap, "group.id": topic + "-check",
                  "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    r.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    done, last, back = set(), {}, []
    deadline = time.monotonic() + 30
    while len(done) < PARTITIONS and time.monotonic() < deadline:
        m = r.poll(0.5)
        if m is None:
            continue
        if m.error():
            done.add(m.partition())
            continue
        p, o = m.partition(), m.offset()
        if p in last and o <= last[p]:
            back.append((p, last[p], o))
        last[p] = o
    r.close()
    return last, back


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--broker", required=True, help="the broker's own listener")
    ap.add_argument("--advertised", required=True, help="the address the broker advertises")
    ap.add_argument("--seconds", type=float, default=90.0, help="how long to run the faults")
    args = ap.parse_args()
    start = time.monotonic()

    def log(msg):
        print(f"{time.monotonic() - start:6.1f}s  {msg}", flush=True)

    proxy = Proxy(args.broker)
    proxy.start(args.advertised)
    topic = f"repeats-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": args.advertised})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result()
    log(f"topic {topic}: {PARTITIONS} partitions")

    stop = threading.Event()
    producer = threading.Thread(target=produce, args=(args.advertised, topic, stop))
    producer.start()
    rebalances = []
    c = Consumer({"bootstrap.servers": args.advertised, "group.id": topic,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "session.timeout.ms": 6000, "partition.assignment.strategy": "range"})
    c.subscribe([topic], on_assign=lambda c, ps: rebalances.append("assign"),
                on_revoke=lambda c, ps: rebalances.append("revoke"))
    last, back, consumed = {}, [], 0
    next_switch = time.monotonic() + 1
    while time.monotonic() - start < args.seconds:
        if time.monotonic() > next_switch:
            mode = random.choice(["cut", "lose", "hold", "calm"])
            proxy.lose = 0.2 if mode == "lose" else 0.0
            proxy.hold = mode == "hold"
            if mode == "cut":
                proxy.cut_all()
            next_switch = time.monotonic() + random.uniform(0.5, 2.0)
        m = c.poll(0.05)
        if rebalances:
            rebalances.clear()
            last.clear()  # a new assignment starts from the committed offsets
        if m is None or m.error():
            continue
        consumed += 1
        p, o = m.partition(), m.offset()
        if p in last and o <= last[p]:
            back.append((p, last[p], o))
            log(f"partition {p}: offset {o} after {last[p]}, no rebalance between")
        last[p] = o
        if consumed % 50 == 0:
            c.commit(asynchronous=True)
    proxy.lose, proxy.hold = 0.0, False
    log(f"consumed {consumed}; went back {len(back)} time(s) within an assignment")
    stop.set()
    producer.join()
    # Leaving the group can hang on a broker in trouble; do not wait for it.
    closing = threading.Thread(target=c.close, daemon=True)
    closing.start()
    closing.join(15)
    ends, stored_back = read_back(args.advertised, topic)
    admin.delete_topics([topic])
    log(f"the stored log read back: last offsets {ends}, {len(stored_back)} step(s) back")
    return 1 if back else 0


if __name__ == "__main__":
    sys.exit(main())
