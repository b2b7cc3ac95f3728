#!/usr/bin/env bash
# Fuzz pitfall's input parsers with cargo fuzz (libFuzzer): the scenario
# parser and the history parser with every checker. The property is the
# command line's: bad input is an error (exit 2), anything else a verdict;
# never a panic, never an abort (a huge allocation counts as one).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   default: 60 s each, every target
#
# New inputs go to target/fuzz-corpus/<target>; the committed seeds in
# fuzz/corpus/<target> are only read. A crash leaves its input under
# fuzz/artifacts/<target>/ and fails the script; rerun it with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(scenario history)

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

for target in "${targets[@]}"; do
    new="target/fuzz-corpus/$target"
    mkdir -p "$new"
    echo "== fuzz $target for ${seconds}s"
    # -s none: the property is panics and aborts, which need no sanitizer;
    # debug assertions (overflow checks) stay on.
    cargo +nightly fuzz run -s none "$target" "$new" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -timeout=10 -print_final_stats=1 2>&1 |
        { grep -v '^#[0-9]*.*\(NEW\|REDUCE\|pulse\)' || true; } || {
        echo "fuzz target $target failed: see fuzz/artifacts/$target/" >&2
        exit 1
    }
done
