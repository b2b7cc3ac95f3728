#!/usr/bin/env bash
# Checks scripts/services.sh's promises on a machine where `start` has run:
# a second `start` starts nothing new (the same pids, exit 0), and `stop`
# leaves no process it started behind (the broker included). .ci/run calls
# it last, since it stops the services.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=target/services

pids() { cat "$STATE"/*.pid 2>/dev/null | sort | tr '\n' ' '; }

scripts/services.sh start >/dev/null
before=$(pids)
scripts/services.sh start
after=$(pids)
if [ "$before" != "$after" ]; then
    echo "FAIL: a second start changed the recorded pids: '$before' -> '$after'" >&2
    exit 1
fi
echo "ok: a second start started nothing new (pids: ${after:-none recorded})"

scripts/services.sh stop
for pid in $after; do
    if kill -0 "$pid" 2>/dev/null; then
        echo "FAIL: pid $pid is still running after stop" >&2
        exit 1
    fi
done
if ls "$STATE"/*.pid >/dev/null 2>&1; then
    echo "FAIL: pid files left behind: $(ls "$STATE"/*.pid)" >&2
    exit 1
fi
if (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; then
    echo "FAIL: something still listens on the broker's port 127.0.0.1:9092" >&2
    exit 1
fi
echo "ok: stop left no process behind"
