//! Throughput of the default suite: seeds per second and simulated seconds
//! per wall second, on one worker and on every core. A benchmark, not a test:
//! it asserts nothing and prints what it measured.
//!
//! `cargo bench --bench suite` (env `PITFALL_BENCH_SEEDS`, default 20 seeds
//! per scenario).

use pitfall_harness::scenario;
use pitfall_harness::sweep::{self, Limits, SweepOptions};
use pitfall_harness::system::Registry;
use pitfall_sim::runner::run_seed;
use std::path::PathBuf;
use std::sync::Arc;

#[allow(clippy::disallowed_methods)] // a benchmark measures the wall clock
fn main() {
    let seeds: u64 = std::env::var("PITFALL_BENCH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let registry = Registry::new(vec![Arc::new(pitfall_system::Shop)]).expect("one system");
    let scenarios = scenario::load(&[dir], &registry).expect("the default suite loads");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "default suite: {} scenarios × {seeds} seeds (seeds {}..{})",
        scenarios.len(),
        1000,
        1000 + seeds
    );
    for jobs in [1, cores] {
        let opts = SweepOptions {
            seeds,
            start_seed: 1000,
            jobs,
            check_determinism: false,
            limits: Limits::default(),
            skip: Default::default(),
            shard: Default::default(),
            first: Default::default(),
        };
        let start = std::time::Instant::now();
        let results = sweep::run(run_seed, &scenarios, &opts, |_| {});
        let wall = start.elapsed().as_secs_f64();
        let sim: f64 = results.iter().map(|r| r.sim_ms as f64 / 1000.0).sum();
        let events: usize = results.iter().map(|r| r.history_lines).sum();
        println!(
            "jobs={jobs:<2} {:>5} seeds in {wall:>7.2}s: {:>6.2} seeds/s, {:>7.1} simulated s per wall s, {:>8.0} history events/s",
            results.len(),
            results.len() as f64 / wall,
            sim / wall,
            events as f64 / wall,
        );
    }
}
