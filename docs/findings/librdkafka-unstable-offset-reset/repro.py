#!/usr/bin/env python3
"""Standalone reproduction: a read_committed consumer whose group rebalances
while a pending transaction holds its committed offset "unstable" (KIP-447)
starts the partition by auto.offset.reset instead of at the committed offset.

A transactional producer commits offset 5 of a 10-record topic for group G
(send_offsets_to_transaction, commit), then sends offset 8 in a second
transaction that it leaves open. A consumer of G (read_committed,
auto.offset.reset=earliest) subscribes to the topic; while its committed
offset is unstable, a second member of G (subscribed to another topic, so
the first keeps its partition) joins and leaves every 1.5 s, making the
group rebalance. The first record the consumer reads should be at offset 5:
the open transaction aborts when its 15 s timeout runs out, or when the
script aborts it after 25 s, and the committed offset is 5 either way.

With --no-rebalance the second member never joins: the consumer waits out
the transaction and starts at 5, which shows the rebalance is the trigger.

Exits 1 if the consumer started before the committed offset, else 0.

    pip install confluent-kafka
    repro.py --bootstrap 127.0.0.1:9092
    repro.py --bootstrap 127.0.0.1:9092 --advertised 127.0.0.1:19092
      (for a broker that advertises an address nobody listens on, such as
       pitfall's test broker: the script forwards it to --bootstrap)
"""

import argparse
import asyncio
import sys
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka import libversion
from confluent_kafka.admin import AdminClient, NewTopic

COMMITTED = 5
PENDING = 8


def forward(listen, upstream):
    """Pass every connection to `listen` through to `upstream`, on a thread."""
    loop = asyncio.new_event_loop()

    async def pipe(client_r, client_w):
        host, port = upstream.rsplit(":", 1)
        try:
            server_r, server_w = await asyncio.open_connection(host, int(port))
        except OSError:
            client_w.close()
            return

        async def copy(reader, writer):
            try:
                while chunk := await reader.read(65536):
                    writer.write(chunk)
                    await writer.drain()
            except OSError:
                pass
            writer.close()

        await asyncio.gather(copy(client_r, server_w), copy(server_r, client_w),
                             return_exceptions=True)

    host, port = listen.rsplit(":", 1)
    try:
        loop.run_until_complete(asyncio.start_server(pipe, host, int(port)))
    except OSError as e:
        print(f"cannot listen at {listen}: {e}", file=sys.stderr)
        sys.exit(2)
    threading.Thread(target=loop.run_forever, daemon=True).start()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True, help="the broker's listener")
    ap.add_argument("--advertised", help="the address the broker advertises, if "
                    "nothing listens there: the script forwards it to --bootstrap")
    ap.add_argument("--no-rebalance", action="store_true",
                    help="control run: no second member, so no rebalance")
    ap.add_argument("--debug", default="", help="librdkafka debug contexts, e.g. cgrp")
    args = ap.parse_args()
    if args.advertised:
        forward(args.advertised, args.bootstrap)
    broker = args.advertised or args.bootstrap
    print(f"librdkafka {libversion()[0]}")

    run = uuid.uuid4().hex[:8]
    topic, other, group = f"unstable-{run}", f"unstable-other-{run}", f"unstable-{run}"
    admin = AdminClient({"bootstrap.servers": broker})
    for f in admin.create_topics([NewTopic(topic, 1, 1), NewTopic(other, 1, 1)]).values():
        f.result()
    plain = Producer({"bootstrap.servers": broker})
    for i in range(10):
        plain.produce(topic, key=str(i), value=b"v")
    plain.flush(10)

    # Commit 5 through a transaction, then leave 8 pending in another.
    holder = Consumer({"bootstrap.servers": broker, "group.id": group})
    txn = Producer({"bootstrap.servers": broker, "transactional.id": f"unstable-{run}",
                    "transaction.timeout.ms": 15000})
    txn.init_transactions()
    committed = None
    for offset, commit in [(COMMITTED, True), (PENDING, False)]:
        txn.begin_transaction()
        txn.send_offsets_to_transaction([TopicPartition(topic, 0, offset)],
                                        holder.consumer_group_metadata())
        if commit:
            txn.commit_transaction()
            committed = holder.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    holder.close()
    print(f"committed offset {committed}; a transaction with offset {PENDING} is left open")

    conf = {"bootstrap.servers": broker, "group.id": group,
            "isolation.level": "read_committed", "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "partition.assignment.strategy": "range",
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
    if args.debug:
        conf["debug"] = args.debug
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            member = Consumer(conf)
            member.subscribe([other])
            until = time.monotonic() + 1.5
            while time.monotonic() < until and not stop.is_set():
                member.poll(0.1)
            member.close()

    start = time.monotonic()
    consumer = Consumer(conf)
    consumer.subscribe([topic])
    if not args.no_rebalance:
        threading.Thread(target=churn, daemon=True).start()
    first = None
    aborted = False
    while first is None and time.monotonic() - start < 40:
        if not aborted and time.monotonic() - start > 25:
            txn.abort_transaction()
            aborted = True
        m = consumer.poll(0.2)
        if m is not None and not m.error():
            first = m.offset()
    stop.set()
    consumer.close()
    took = time.monotonic() - start
    print(f"first record read: offset {first}, {took:.1f} s after subscribing"
          f"{' (with the group rebalancing meanwhile)' if not args.no_rebalance else ''}")
    if first is None or first < COMMITTED:
        print(f"UNEXPECTED: started before the committed offset {COMMITTED}")
        sys.exit(1)
    print("as expected: started at or after the committed offset")


if __name__ == "__main__":
    main()
