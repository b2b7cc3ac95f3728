#!/usr/bin/env bash
# The local services real mode needs, on a machine like CI's:
#   - Postgres on 127.0.0.1:5432 with wal_level=logical (for CDC by logical decoding);
#   - Tansu, a Kafka-API-compatible broker, listening on $PITFALL_KAFKA and
#     advertising pitfall's broker fault proxy ($PITFALL_KAFKA_PROXY), so that
#     clients reconnect through the proxy and broker faults apply.
#
# Usage: scripts/services.sh start | stop | status
set -euo pipefail
cd "$(dirname "$0")/.."

KAFKA=${PITFALL_KAFKA:-127.0.0.1:9092}
KAFKA_PROXY=${PITFALL_KAFKA_PROXY:-127.0.0.1:19092}
TANSU_VERSION=0.6.0
TANSU_LOG=target/tansu.log

pg_version() { ls /etc/postgresql | sort -V | tail -n 1; }
psql_() { psql -h 127.0.0.1 -U postgres -d postgres -Atqc "$1"; }

wait_for() { # host:port, what
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
        sleep 0.2
    done
    echo "error: $2 did not come up on $1" >&2
    return 1
}

start_postgres() {
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        echo "starting Postgres $(pg_version)"
        pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main start
        wait_for 127.0.0.1:5432 Postgres
    fi
    if [ "$(psql_ 'SHOW wal_level')" != logical ]; then
        echo "setting wal_level = logical and restarting Postgres"
        psql_ "ALTER SYSTEM SET wal_level = logical"
        pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main restart
        wait_for 127.0.0.1:5432 Postgres
    fi
    until pg_isready -q -h 127.0.0.1 -p 5432; do sleep 0.2; done
    echo "Postgres: ready, wal_level=$(psql_ 'SHOW wal_level')"
}

start_tansu() {
    if ! command -v tansu >/dev/null 2>&1; then
        echo "installing tansu $TANSU_VERSION (about 15-25 minutes on 2 cores; once per machine)"
        cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore
    fi
    if pgrep -f "tansu broker" >/dev/null; then
        echo "Tansu: already running"
        return 0
    fi
    mkdir -p target
    echo "starting Tansu on $KAFKA, advertising $KAFKA_PROXY"
    nohup tansu broker \
        --listener-url "tcp://$KAFKA" \
        --advertised-listener-url "tcp://$KAFKA_PROXY" \
        --storage-engine memory://tansu/ >"$TANSU_LOG" 2>&1 &
    wait_for "$KAFKA" Tansu
    echo "Tansu: ready (log: $TANSU_LOG)"
}

case "${1:-}" in
start)
    start_postgres
    start_tansu
    ;;
stop)
    pkill -f "tansu broker" && echo "Tansu stopped" || echo "Tansu was not running"
    ;;
status)
    pg_isready -h 127.0.0.1 -p 5432 && echo "wal_level=$(psql_ 'SHOW wal_level')" || true
    pgrep -af "tansu broker" || echo "Tansu: not running"
    ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
