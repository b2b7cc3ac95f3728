#!/usr/bin/env bash
# The project's test command (the README's). On a fresh machine it installs
# and starts what the real-mode tests need (Postgres with wal_level=logical,
# MariaDB with the binlog on, Apache Kafka in KRaft mode; see
# scripts/services.sh), then runs formatting, lints (including the
# determinism rules in clippy.toml) and every test in the workspace: unit,
# property, CLI, the contract suite against both the simulated and the real
# adapters, and a real-mode run.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== services for real mode"
scripts/services.sh start

echo "== headless Chromium for the report test (Debian's chromium package)"
if ! command -v chromium >/dev/null 2>&1; then
    sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo test --workspace"
# The real-mode tests share the broker fault proxy's port: one test at a time
# in those binaries; the rest in parallel.
cargo test --workspace --exclude pitfall-real --exclude pitfall -- --test-threads 2
cargo test -p pitfall-real -- --test-threads 1
cargo test -p pitfall -- --test-threads 1
