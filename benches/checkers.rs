//! What `pitfall check` costs on long histories, in CPU time: reading the
//! file, parsing it into the compact form (with the shape check), and each
//! invariant of the reference system. A benchmark, not a test: it asserts
//! nothing and prints what it measured.
//!
//! `cargo bench --bench checkers` first generates its histories with the
//! simulator, once, into `target/checkers-bench/` (a few minutes; each file
//! is named after a hash of its scenario text and seed, so a file from
//! another generator setting is never reused; delete the folder to generate
//! them again):
//! - `all-remedies-1m`: every remedy at once (CDC, context, dedupe,
//!   revisions, claim check, CRUD+CDC orders view, third-party carrier,
//!   Kafka transactions) with 23,000 orders over an hour of chaos: over a
//!   million lines, and every checker walks its full path;
//! - `cdc-80k`: the `cdc` remedy with 15,000 orders (as many as its
//!   inventory consumers drain in time), a different mix of lines.
//!
//! Then it checks each history in a child process of its own (so CPU time
//! and peak RSS are that step's alone), `PITFALL_BENCH_RUNS` times (default
//! 3), and prints per history: lines, CPU seconds to read, to parse and to
//! check, lines per CPU-second, peak RSS, and the split per invariant of
//! the fastest run.
//!
//! Environment: `PITFALL_BENCH_RUNS`, `PITFALL_BENCH_HISTORIES`
//! (comma-separated names; default both), `PITFALL_BENCH_JSON` (also write
//! the figures there as JSON).

mod common;

use common::{cpu_seconds, peak_rss_kb};
use pitfall_harness::checkers::{self, Invariant};
use pitfall_harness::history::compact::{Arena, Compact};
use pitfall_harness::history::{file, to_jsonl};
use pitfall_harness::scenario;
use pitfall_harness::sweep::{Limits, SeedStatus};
use pitfall_harness::system::Registry;
use pitfall_sim::runner::run_seed;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// The child's environment variable: the history file it checks.
const CHILD: &str = "PITFALL_BENCH_CHILD";
const SEED: u64 = 1;

/// Every remedy at once, sized to over a million lines: the orders stay
/// slow enough that every consumer drains within the hour after the chaos.
const ALL_REMEDIES: &str = r#"
name = "checkers-all-remedies"
description = "0-all-remedies with a long workload, for the checkers' benchmark"
pitfall = 0
expect = "holds"

[variants]
producer = "cdc"
consumer = "dedupe-event-id"
context = "propagated"
ordering = "revision"
delivery = "kafka-eos"

[workload]
shoppers = 16
products = 3
initial_stock = 100000000
orders = 23000
attempts = 12
refunds = 0.3

[orders]
model = "crud-cdc"

[payloads]
strategy = "claim-check"
share = 0.1
min_kib = 1
max_kib = 64

[third_party]
call = "idempotency-key"

[faults]
allowed = ["db-outage", "db-slow", "db-crash", "db-lost-ack", "broker-outage", "broker-slow", "broker-crash", "broker-lost-ack", "store-outage", "store-slow", "partition", "crash-payments", "crash-cdc", "crash-inventory", "duplicate-delivery", "reorder", "crash-point", "fail-point", "api-outage", "api-slow", "api-lost-reply"]

[producer]
idempotent = true

[run]
chaos_seconds = 3600.0
drain_seconds = 3600.0
"#;

/// The `cdc` remedy with a long workload (its inventory consumers handle a
/// few records a second per partition: more orders than this and the drain
/// does not end in time).
const CDC: &str = r#"
name = "checkers-cdc"
description = "1-cdc with a long workload, for the checkers' benchmark"
pitfall = 1
expect = "holds"

[variants]
producer = "cdc"
consumer = "dedupe-event-id"

[workload]
shoppers = 40
products = 3
initial_stock = 10000000
orders = 15000

[faults]
allowed = ["db-outage", "db-slow", "db-crash", "db-lost-ack", "broker-outage", "broker-slow", "broker-crash", "broker-lost-ack", "partition", "crash-payments", "crash-inventory", "duplicate-delivery", "reorder", "crash-cdc", "crash-point", "fail-point"]

[producer]
idempotent = true

[run]
chaos_seconds = 3000.0
drain_seconds = 1800.0
"#;

const HISTORIES: [(&str, &str); 2] = [("all-remedies-1m", ALL_REMEDIES), ("cdc-80k", CDC)];

fn main() {
    if let Ok(file) = std::env::var(CHILD) {
        println!("{}", measure_check(Path::new(&file)));
        return;
    }
    let wanted: Option<Vec<String>> = std::env::var("PITFALL_BENCH_HISTORIES")
        .ok()
        .map(|s| s.split(',').map(|n| n.trim().to_string()).collect());
    let mut rows = Vec::new();
    for (name, toml) in HISTORIES {
        if wanted
            .as_ref()
            .is_some_and(|w| !w.iter().any(|n| n == name))
        {
            continue;
        }
        let file = history_file(name, toml);
        let runs: Vec<Value> = (0..runs()).map(|_| run_child(&file)).collect();
        print_history(name, &runs);
        rows.push(json!({"history": name, "runs": runs}));
    }
    if let Ok(path) = std::env::var("PITFALL_BENCH_JSON") {
        let all = json!({ "histories": rows });
        std::fs::write(&path, serde_json::to_string_pretty(&all).unwrap() + "\n")
            .expect("PITFALL_BENCH_JSON is writable");
    }
}

fn runs() -> usize {
    std::env::var("PITFALL_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
}

fn registry() -> Registry {
    Registry::new(vec![Arc::new(pitfall_system::Shop)]).expect("one system")
}

/// FNV-1a: a stable hash for the cache key (std's hasher is seeded).
fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|p| p.iter().chain([&0xff])) {
        h = (h ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The history of `toml`'s scenario at [`SEED`], generated unless a file
/// for the same scenario text and seed is there. It is the checkers' input,
/// not a repro: it need not come from this build's simulator (delete the
/// folder to generate it again, e.g. after the history format changes).
fn history_file(name: &str, toml: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/checkers-bench");
    let key = fnv(&[toml.as_bytes(), &SEED.to_le_bytes()]);
    let file = dir.join(format!("{name}-{key:016x}.jsonl"));
    if file.exists() {
        return file;
    }
    std::fs::create_dir_all(&dir).expect("the target folder is writable");
    generate(name, toml, &file);
    file
}

/// Run the scenario's seed in the simulation and write its history.
fn generate(name: &str, toml: &str, file: &Path) {
    eprintln!(
        "generating the {name} history (seed {SEED}); this takes a few minutes and several GB of memory, once"
    );
    let path = PathBuf::from(format!("{name}.toml"));
    let scenario = scenario::parse(&path, toml, &registry()).expect("the bench's scenario parses");
    let start = cpu_seconds();
    let limits = Limits {
        wall: Duration::from_secs(4 * 3600),
    };
    let run = run_seed(&scenario, SEED, limits);
    if let SeedStatus::Failed { reason } = &run.status {
        panic!("generating {name}: the seed failed: {reason}");
    }
    for v in &run.violations {
        eprintln!(
            "  warning: the history is not clean: {}: {}",
            v.invariant, v.message
        );
    }
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, to_jsonl(&run.history)).expect("the history is writable");
    std::fs::rename(&tmp, file).expect("the history is writable");
    eprintln!(
        "  {} lines in {:.0} CPU-s, {} violation(s): {}",
        run.history.len(),
        cpu_seconds() - start,
        run.violations.len(),
        file.display()
    );
}

/// Check one history in a child process (this benchmark again, with
/// [`CHILD`] set).
fn run_child(file: &Path) -> Value {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let out = Command::new(exe)
        .env(CHILD, file)
        .output()
        .expect("the benchmark can run itself");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", file.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("the child prints its figures")
}

fn print_history(name: &str, runs: &[Value]) {
    let num = |r: &Value, k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    let best = runs
        .iter()
        .min_by(|a, b| num(a, "total_s").total_cmp(&num(b, "total_s")))
        .expect("at least one run");
    println!(
        "{name}: {} lines, {:.1} MB, {} violation(s)",
        best["lines"],
        num(best, "bytes") / 1e6,
        best["violations"]
    );
    println!(
        "  {:>4} {:>8} {:>8} {:>8} {:>8} {:>13} {:>8}",
        "run", "read s", "parse s", "check s", "total s", "lines/CPU-s", "RSS MB"
    );
    for (i, r) in runs.iter().enumerate() {
        println!(
            "  {:>4} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>13.0} {:>8.1}",
            i + 1,
            num(r, "read_s"),
            num(r, "parse_s"),
            num(r, "check_s"),
            num(r, "total_s"),
            num(r, "lines") / num(r, "total_s"),
            num(r, "peak_rss_kb") / 1024.0
        );
    }
    println!("  per invariant, fastest run (CPU s):");
    for (invariant, s) in best["invariants"].as_object().into_iter().flatten() {
        println!(
            "    {invariant:<22} {:>7.3}",
            s.as_f64().unwrap_or(f64::NAN)
        );
    }
}

/// The child: what `pitfall check FILE` does, step by step, with the CPU
/// time of each (`getrusage`).
fn measure_check(file: &Path) -> Value {
    let start = cpu_seconds();
    let bytes = file::read(file).expect("the history is readable");
    let text = std::str::from_utf8(&bytes).expect("the history is UTF-8");
    let read = cpu_seconds();
    let arena = Arena::new();
    let name = file.display().to_string();
    let history = Compact::parse_history(text, &name, &arena).expect("the history parses");
    let parsed = cpu_seconds();
    let system = registry().default_system().clone();
    let invariants = checkers::all(&system);
    let (violations, split) = check_each(&invariants, &history);
    let checked = cpu_seconds();
    json!({
        "lines": history.len(),
        "bytes": text.len(),
        "read_s": read - start,
        "parse_s": parsed - read,
        "check_s": checked - parsed,
        "total_s": checked - start,
        "violations": violations,
        "invariants": split,
        "peak_rss_kb": peak_rss_kb(),
    })
}

/// Every invariant over the history, as `check_all_compact` runs them:
/// how many violations, and each one's CPU seconds.
fn check_each(
    invariants: &[Invariant],
    history: &Compact<'_>,
) -> (usize, serde_json::Map<String, Value>) {
    let mut violations = 0;
    let mut split = serde_json::Map::new();
    for invariant in invariants {
        let start = cpu_seconds();
        violations += invariant.check_compact(history).len();
        split.insert(invariant.name.to_string(), json!(cpu_seconds() - start));
    }
    (violations, split)
}

/// The allocator of the `pitfall` binary, so that what this benchmark checks
/// costs what it costs there.
#[global_allocator]
static ALLOCATOR: pitfall::allocator::Allocator = pitfall::allocator::Allocator;
