#!/usr/bin/env bash
# The local services real mode needs, installed and started on a machine like
# CI's, where nothing is pre-started:
#   - Postgres (Debian's `postgresql`) on 127.0.0.1:5432 with wal_level=logical,
#     for CDC by logical decoding; loopback connections are trusted;
#   - MariaDB (Debian's `mariadb-server`) on 127.0.0.1:3306 with the binlog on
#     in ROW format with full row images, for CDC from the binlog; root may
#     connect over loopback without a password;
#   - Apache Kafka, a single-node KRaft broker run from the jars on Maven
#     Central (scripts/kafka/pom.xml pins the version), listening on
#     $PITFALL_KAFKA and advertising pitfall's broker fault proxy
#     ($PITFALL_KAFKA_PROXY), so that clients reconnect through the proxy and
#     broker faults apply.
#
# Usage: scripts/services.sh start | stop [kafka|mariadb|postgres ...] | status
#
# `start` is idempotent: what already runs is left alone. `stop` stops only
# what `start` started, by the pids it recorded under target/services/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

KAFKA=${PITFALL_KAFKA:-127.0.0.1:9092}
KAFKA_PROXY=${PITFALL_KAFKA_PROXY:-127.0.0.1:19092}
KAFKA_INTERNAL=${PITFALL_KAFKA_INTERNAL:-127.0.0.1:9094}
KAFKA_CONTROLLER=${PITFALL_KAFKA_CONTROLLER:-127.0.0.1:9093}
MARIADB_PORT=3306

STATE=$ROOT/target/services # pid files, the Kafka jars, data and logs
KAFKA_DIR=$STATE/kafka
KAFKA_POM=$ROOT/scripts/kafka/pom.xml
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_POM")

say() { echo "services: $*"; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() { # package...
    say "installing $* from Debian's packages"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

port_open() { # host:port
    (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null
}

wait_for_port() { # host:port, what, seconds
    local deadline=$((SECONDS + $3))
    until port_open "$1"; do
        if [ $SECONDS -ge $deadline ]; then
            echo "error: $2 did not come up on $1 within $3 s" >&2
            return 1
        fi
        sleep 0.2
    done
}

alive() { # pid file
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# Stops the process whose pid `start` recorded, with SIGNAL first and SIGKILL
# after SECONDS; never by a name pattern.
stop_recorded() { # name, pid file, signal, seconds
    local name=$1 file=$2 signal=$3 seconds=$4
    if ! alive "$file"; then
        rm -f "$file"
        say "$name: not started by this script"
        return 0
    fi
    local pid
    pid=$(cat "$file")
    kill "-$signal" "$pid"
    local deadline=$((SECONDS + seconds))
    while kill -0 "$pid" 2>/dev/null; do
        if [ $SECONDS -ge $deadline ]; then
            say "$name (pid $pid) still running after $seconds s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        sleep 0.2
    done
    rm -f "$file"
    say "$name stopped (pid $pid)"
}

# ---------------------------------------------------------------- Postgres

pg_version() { ls /usr/lib/postgresql | sort -V | tail -n 1; }
pg_conf_dir() { echo "/etc/postgresql/$(pg_version)/main"; }
pg_pid_of_cluster() { head -n 1 "/var/lib/postgresql/$(pg_version)/main/postmaster.pid"; }
psql_() { psql -h 127.0.0.1 -U postgres -d postgres -Atqc "$1"; }

configure_postgres() {
    local conf
    conf=$(pg_conf_dir)
    as_root tee "$conf/conf.d/pitfall.conf" >/dev/null <<'EOF'
# pitfall: logical decoding for CDC, and room for one slot per connector.
listen_addresses = '127.0.0.1'
port = 5432
wal_level = logical
max_replication_slots = 64
max_wal_senders = 16
max_connections = 200
EOF
    # Loopback is trusted on this test machine: real mode connects as
    # postgres@127.0.0.1 without a password. First match wins in pg_hba.
    if ! grep -q '^# pitfall' "$conf/pg_hba.conf"; then
        as_root sed -i '1i # pitfall: trust loopback (test machine)\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nhost replication all 127.0.0.1/32 trust' "$conf/pg_hba.conf"
    fi
}

start_postgres() {
    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        apt_install postgresql postgresql-contrib
    fi
    local version
    version=$(pg_version)
    if ! pg_lsclusters -h | grep -q "^$version main "; then
        say "creating the Postgres $version cluster"
        as_root pg_createcluster "$version" main >/dev/null
    fi
    configure_postgres
    if pg_isready -q -h 127.0.0.1 -p 5432; then
        if [ "$(psql_ 'SHOW wal_level')" = logical ]; then
            say "Postgres $version: already running"
            return 0
        fi
        say "Postgres: restarting for wal_level = logical"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main restart
    else
        say "starting Postgres $version"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
        pg_pid_of_cluster >"$STATE/postgres.pid"
    fi
    until pg_isready -q -h 127.0.0.1 -p 5432; do sleep 0.2; done
    say "Postgres: ready, wal_level=$(psql_ 'SHOW wal_level')"
}

# ---------------------------------------------------------------- MariaDB

mariadb_bin() { command -v mariadbd || echo /usr/sbin/mariadbd; }

configure_mariadb() {
    as_root tee /etc/mysql/mariadb.conf.d/90-pitfall.cnf >/dev/null <<EOF
# pitfall: the binlog for CDC (row events with full before/after images).
[mysqld]
bind_address = 127.0.0.1
port = $MARIADB_PORT
server_id = 1
log_bin = pitfall-bin
binlog_format = ROW
binlog_row_image = FULL
expire_logs_days = 1
skip_name_resolve = 1
EOF
}

start_mariadb() {
    if [ ! -x "$(mariadb_bin)" ]; then
        apt_install mariadb-server mariadb-client
    fi
    configure_mariadb
    if port_open "127.0.0.1:$MARIADB_PORT"; then
        say "MariaDB: already running"
        return 0
    fi
    if [ ! -d /var/lib/mysql/mysql ]; then
        say "initialising MariaDB's data folder"
        as_root mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    fi
    as_root install -d -o mysql -g mysql /run/mysqld
    say "starting MariaDB"
    nohup "$(mariadb_bin)" --user=mysql >"$STATE/mariadb.log" 2>&1 &
    echo $! >"$STATE/mariadb.pid"
    wait_for_port "127.0.0.1:$MARIADB_PORT" MariaDB 60
    until as_root mariadb -uroot -e 'SELECT 1' >/dev/null 2>&1; do sleep 0.2; done
    # Over loopback TCP, root connects without a password (test machine).
    as_root mariadb -uroot -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
        GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
    say "MariaDB: ready, $(as_root mariadb -uroot -Nse "SELECT CONCAT('log_bin=', @@log_bin, ' binlog_format=', @@binlog_format, ' binlog_row_image=', @@binlog_row_image)")"
}

# ---------------------------------------------------------------- Kafka

fetch_kafka() {
    if [ -f "$KAFKA_DIR/libs/kafka_2.13-$KAFKA_VERSION.jar" ]; then
        return 0
    fi
    command -v java >/dev/null || apt_install openjdk-17-jre-headless
    command -v mvn >/dev/null || apt_install maven
    say "fetching Apache Kafka $KAFKA_VERSION and its dependencies from Maven Central"
    rm -rf "$KAFKA_DIR/libs"
    mvn -B -q -Dstyle.color=never -f "$KAFKA_POM" -Dmaven.repo.local="$STATE/m2" \
        dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$KAFKA_DIR/libs"
}

# The JVM and class path that run the broker and its storage tool.
KAFKA_JAVA=(java -Xms256m -Xmx1g -Dkafka.log.file="$KAFKA_DIR/server.log"
    -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties"
    -cp "$KAFKA_DIR/libs/*")

# The broker's configuration, and KRaft storage formatted for this version.
prepare_kafka() {
    sed -e "s#@DATA_DIR@#$KAFKA_DIR/data#" -e "s#@KAFKA@#$KAFKA#" \
        -e "s#@KAFKA_PROXY@#$KAFKA_PROXY#" -e "s#@INTERNAL@#$KAFKA_INTERNAL#" \
        -e "s#@CONTROLLER@#$KAFKA_CONTROLLER#" \
        "$ROOT/scripts/kafka/server.properties" >"$KAFKA_DIR/server.properties"
    if [ "$(cat "$KAFKA_DIR/data.version" 2>/dev/null)" != "$KAFKA_VERSION" ]; then
        say "formatting KRaft storage for Kafka $KAFKA_VERSION"
        rm -rf "$KAFKA_DIR/data"
        local cluster_id
        cluster_id=$("${KAFKA_JAVA[@]}" kafka.tools.StorageTool random-uuid)
        "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format --standalone -t "$cluster_id" \
            -c "$KAFKA_DIR/server.properties" >/dev/null
        echo "$KAFKA_VERSION" >"$KAFKA_DIR/data.version"
    fi
}

start_kafka() {
    if alive "$STATE/kafka.pid" || port_open "$KAFKA"; then
        say "Apache Kafka: already running on $KAFKA"
        return 0
    fi
    mkdir -p "$KAFKA_DIR"
    fetch_kafka
    prepare_kafka
    say "starting Apache Kafka $KAFKA_VERSION on $KAFKA, advertising $KAFKA_PROXY"
    : >"$KAFKA_DIR/server.log"
    nohup "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_DIR/server.properties" \
        >"$KAFKA_DIR/stdout.log" 2>&1 &
    echo $! >"$STATE/kafka.pid"
    local deadline=$((SECONDS + 90))
    until grep -q 'Kafka Server started' "$KAFKA_DIR/server.log" 2>/dev/null; do
        if ! alive "$STATE/kafka.pid" || [ $SECONDS -ge $deadline ]; then
            echo "error: Apache Kafka did not start; see $KAFKA_DIR/server.log and $KAFKA_DIR/stdout.log" >&2
            tail -n 20 "$KAFKA_DIR/stdout.log" >&2 || true
            return 1
        fi
        sleep 0.2
    done
    wait_for_port "$KAFKA" "Apache Kafka" 30
    say "Apache Kafka $KAFKA_VERSION: ready (log: $KAFKA_DIR/server.log)"
}

# ---------------------------------------------------------------- commands

status() {
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
        say "Postgres: running, wal_level=$(psql_ 'SHOW wal_level')"
    else
        say "Postgres: not running"
    fi
    if port_open "127.0.0.1:$MARIADB_PORT"; then say "MariaDB: running"; else say "MariaDB: not running"; fi
    if port_open "$KAFKA"; then say "Apache Kafka: running on $KAFKA"; else say "Apache Kafka: not running"; fi
    for f in "$STATE"/*.pid; do
        [ -e "$f" ] && alive "$f" && say "started here: $(basename "$f" .pid) (pid $(cat "$f"))"
    done
    return 0
}

mkdir -p "$STATE"
case "${1:-}" in
start)
    started=$SECONDS
    start_postgres
    start_mariadb
    start_kafka
    say "all ready in $((SECONDS - started)) s"
    ;;
stop)
    # Every service, or those named: stop kafka | mariadb | postgres ...
    shift
    for service in "${@:-kafka mariadb postgres}"; do
        for s in $service; do
            case "$s" in
            kafka) stop_recorded "Apache Kafka" "$STATE/kafka.pid" TERM 60 ;;
            mariadb) stop_recorded MariaDB "$STATE/mariadb.pid" TERM 60 ;;
            postgres) stop_recorded Postgres "$STATE/postgres.pid" INT 60 ;;
            *)
                echo "usage: $0 stop [kafka|mariadb|postgres ...]" >&2
                exit 2
                ;;
            esac
        done
    done
    ;;
status)
    status
    ;;
*)
    echo "usage: $0 start | stop [kafka|mariadb|postgres ...] | status" >&2
    exit 2
    ;;
esac
