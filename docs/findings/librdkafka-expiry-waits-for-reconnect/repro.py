#!/usr/bin/env python3
"""Standalone reproduction: while the broker refuses connections, librdkafka
reports a produced message as timed out only at its next reconnect attempt,
long after `message.timeout.ms`.

A producer (librdkafka through confluent-kafka, acks=all, message.timeout.ms
500) talks to the broker through a small TCP proxy at the address the broker
advertises. After one acknowledged record the proxy cuts every connection and
refuses new ones (it accepts and closes at once) for --outage seconds, then
passes traffic again. A record is produced every 250 ms through the first
three seconds of the outage, and the time of each delivery report is
printed. The same is done twice: with librdkafka's default reconnect backoff
(reconnect.backoff.max.ms 10000), then with reconnect.backoff.max.ms 250.

Exits 1 if a delivery report came more than a second after the message's
timeout with the default settings, else 0.

    pip install confluent-kafka
    repro.py --broker 127.0.0.1:9092 --advertised 127.0.0.1:19092
"""

import argparse
import asyncio
import sys
import threading
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

MESSAGE_TIMEOUT_MS = 500


class Proxy:
    """Forwards bytes; while `refuse` is set, closes every new connection."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.refuse = threading.Event()
        self.open = set()
        self.loop = asyncio.new_event_loop()

    def start(self, address):
        """Listen at `address` (exit 2 if taken), then serve on a thread."""
        host, port = address.rsplit(":", 1)
        try:
            self.loop.run_until_complete(asyncio.start_server(self.pipe, host, int(port)))
        except OSError as e:
            print(f"cannot listen at {address} (the advertised address): {e}", file=sys.stderr)
            sys.exit(2)
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def cut_all(self):
        """Close every open connection (from any thread)."""
        self.loop.call_soon_threadsafe(lambda: [w.close() for w in list(self.open)])

    async def pipe(self, client_r, client_w):
        if self.refuse.is_set():
            client_w.close()
            return
        host, port = self.upstream.rsplit(":", 1)
        try:
            server_r, server_w = await asyncio.open_connection(host, int(port))
        except OSError:
            client_w.close()
            return
        self.open.update([client_w, server_w])

        async def forward(reader, writer):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()

        tasks = [
            asyncio.ensure_future(forward(client_r, server_w)),
            asyncio.ensure_future(forward(server_r, client_w)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        for w in (client_w, server_w):
            self.open.discard(w)
            w.close()


def run(proxy, advertised, topic, outage_s, extra):
    """One outage; the latest delivery report's lateness past the timeout (s)."""
    start = time.monotonic()

    def log(msg):
        print(f"{time.monotonic() - start:6.2f}s  {msg}", flush=True)

    producer = Producer({
        "bootstrap.servers": advertised,
        "acks": "all",
        "message.timeout.ms": MESSAGE_TIMEOUT_MS,
        "socket.timeout.ms": MESSAGE_TIMEOUT_MS,
        "linger.ms": 5,
        **extra,
    })
    first = {}
    producer.produce(topic, value=b"before", on_delivery=lambda err, msg: first.setdefault("err", err))
    producer.flush(10)
    log(f"first record: {first.get('err') or 'acknowledged'}")

    proxy.refuse.set()
    proxy.cut_all()
    outage_start = time.monotonic()
    log(f"the proxy cuts every connection and refuses new ones for {outage_s:.1f} s")
    worst = 0.0
    reports = []

    def report(sent_at, label):
        def cb(err, msg):
            now = time.monotonic()
            reports.append((label, sent_at, now, err))
        return cb

    healed = False
    next_send = outage_start
    sent = 0
    while time.monotonic() < outage_start + outage_s + 12 and len(reports) < 12:
        now = time.monotonic()
        if not healed and now >= outage_start + outage_s:
            proxy.refuse.clear()
            healed = True
            log("the proxy passes traffic again")
        if sent < 12 and now >= next_send:
            producer.produce(topic, value=b"during", on_delivery=report(now, f"record {sent}"))
            sent += 1
            next_send += 0.25
        producer.poll(0.01)
    for label, sent_at, at, err in reports:
        late = (at - sent_at) - MESSAGE_TIMEOUT_MS / 1000
        worst = max(worst, late)
        log(f"{label}, sent at {sent_at - start:5.2f}s: reported at {at - start:5.2f}s "
            f"({(at - sent_at) * 1000:5.0f} ms after the send): {err or 'acknowledged'}")
    if len(reports) < 12:
        log(f"{12 - len(reports)} record(s) got no delivery report")
        worst = float("inf")
    proxy.refuse.clear()
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--broker", required=True, help="the broker's own listener")
    ap.add_argument("--advertised", required=True, help="the address the broker advertises")
    ap.add_argument("--outage", type=float, default=4.0, help="seconds of refused connections")
    args = ap.parse_args()

    proxy = Proxy(args.broker)
    proxy.start(args.advertised)
    topic = f"expiry-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": args.broker})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result()

    print("== librdkafka's default reconnect backoff")
    late_default = run(proxy, args.advertised, topic, args.outage, {})
    print("\n== reconnect.backoff.max.ms = 250")
    late_tuned = run(proxy, args.advertised, topic, args.outage, {"reconnect.backoff.max.ms": 250})
    print(f"\nlatest report past message.timeout.ms: default {late_default:.2f} s, "
          f"reconnect.backoff.max.ms=250 {late_tuned:.2f} s")
    sys.exit(1 if late_default > 1.0 else 0)


if __name__ == "__main__":
    main()
