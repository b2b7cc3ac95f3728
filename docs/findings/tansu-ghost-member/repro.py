#!/usr/bin/env python3
"""Standalone reproduction: a consumer-group member whose JoinGroup reply is
lost stays in the group as a ghost that owns partitions.

Two consumers (librdkafka through confluent-kafka) share a group on a
3-partition topic. A small Kafka-frame-aware TCP proxy sits at the address
the broker advertises; it drops the reply to the second consumer's first
JoinGroup and cuts that connection, as a network fault would. The client
rejoins under a new member id. The member the broker created for the lost
reply never heartbeats; a broker must expire it after session.timeout.ms
and rebalance, so every partition ends up with one of the two live
consumers.

Prints the assignment timeline and exits 0 if, by the end, the live
consumers own every partition; 1 if some partition stayed with no live
consumer.

    pip install confluent-kafka
    repro.py --broker 127.0.0.1:9095 --advertised 127.0.0.1:29092

--broker is the broker's real listener, --advertised the address it
advertises (the proxy listens there).
"""

import argparse
import asyncio
import struct
import sys
import threading
import time
import uuid

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

JOIN_GROUP = 11
SESSION_TIMEOUT_MS = 6000


class Proxy:
    """Forwards whole Kafka frames; drops the reply to one JoinGroup."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.armed = False
        self.dropped = threading.Event()

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
        doomed = set()  # correlation ids whose reply is dropped

        async def frames(reader):
            while True:
                head = await reader.readexactly(4)
                (size,) = struct.unpack(">i", head)
                yield head + await reader.readexactly(size)

        async def upstream():
            async for frame in frames(client_r):
                api_key, _, corr = struct.unpack(">hhi", frame[4:12])
                if api_key == JOIN_GROUP and self.armed:
                    self.armed = False
                    doomed.add(corr)
                server_w.write(frame)
                await server_w.drain()

        async def downstream():
            async for frame in frames(server_r):
                (corr,) = struct.unpack(">i", frame[4:8])
                if corr in doomed:
                    self.dropped.set()
                    raise ConnectionResetError("reply dropped")
                client_w.write(frame)
                await client_w.drain()

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        client_w.close()
        server_w.close()


def member(name, bootstrap, group, topic, owned, log, stop):
    def on_assign(consumer, partitions):
        owned[name] = sorted(p.partition for p in partitions)
        log(f"{name} assigned {owned[name]}")

    def on_revoke(consumer, partitions):
        owned[name] = []
        log(f"{name} revoked")

    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": 1000,
        "partition.assignment.strategy": "range",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    while not stop.is_set():
        c.poll(0.1)
    c.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--broker", required=True, help="the broker's own listener")
    ap.add_argument("--advertised", required=True, help="the address the broker advertises")
    ap.add_argument("--seconds", type=float, default=40.0, help="how long to watch")
    args = ap.parse_args()

    start = time.monotonic()

    def log(msg):
        print(f"{time.monotonic() - start:6.1f}s  {msg}", flush=True)

    proxy = Proxy(args.broker)
    proxy.start(args.advertised)

    tag = uuid.uuid4().hex[:8]
    topic, group = f"ghost-{tag}", f"ghost-{tag}"
    admin = AdminClient({"bootstrap.servers": args.advertised})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result()
    log(f"topic {topic}: 3 partitions; group {group}")

    owned, stop = {}, threading.Event()
    threads = [threading.Thread(target=member, args=("A", args.advertised, group, topic, owned, log, stop))]
    threads[0].start()
    while owned.get("A") != [0, 1, 2] and time.monotonic() - start < 30:
        time.sleep(0.1)
    log("A owns every partition; B joins, and the reply to its first JoinGroup is lost")
    proxy.armed = True
    threads.append(threading.Thread(target=member, args=("B", args.advertised, group, topic, owned, log, stop)))
    threads[1].start()
    if proxy.dropped.wait(15):
        log("JoinGroup reply dropped, connection cut")
    time.sleep(args.seconds)
    live = sorted(set(owned.get("A", [])) | set(owned.get("B", [])))
    orphaned = sorted(set(range(3)) - set(live))
    log(f"after {args.seconds:.0f}s: A {owned.get('A')}, B {owned.get('B')}; no live member owns {orphaned}")
    stop.set()
    for t in threads:
        t.join()
    admin.delete_topics([topic])
    if not proxy.dropped.is_set():
        log("the fault never fired: inconclusive")
        return 2
    return 1 if orphaned else 0


if __name__ == "__main__":
    sys.exit(main())
