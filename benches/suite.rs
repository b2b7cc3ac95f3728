//! What a seed costs, per scenario of the default suite, in CPU time: the
//! shared machines are noisy, so wall time is not the measure. A benchmark,
//! not a test: it asserts nothing and prints what it measured.
//!
//! `cargo bench --bench suite` runs each scenario in a child process of its
//! own (so CPU time and peak RSS are that scenario's alone), one seed at a
//! time, and prints per scenario:
//! - seeds per CPU-second, and simulated time per CPU time;
//! - turmoil steps per seed and the share of idle steps (no frame sent,
//!   nothing recorded); the share of steps moved over at once because no
//!   host would run in them (`skip`), and host runtimes ticked per step
//!   (`hosts/st`: a host with nothing to run is left alone);
//! - frames per seed, and the peak RSS of the child;
//! - the CPU time against a bare turmoil echo of the same frame count, run
//!   in the same child after the seeds (`echo ×`);
//! - with `PITFALL_BENCH_CALLGRIND=1`, instructions per seed counted by
//!   `valgrind --tool=callgrind` (which counts the same on a loaded
//!   machine; slow, so use few seeds). `perf stat` does not count
//!   instructions on this project's CI machines.
//!
//! Then the suite's throughput: all seeds over all CPU time.
//!
//! Environment: `PITFALL_BENCH_SEEDS` (default 25 per scenario, seeds
//! 1000…), `PITFALL_BENCH_SCENARIOS` (comma-separated names; default every
//! scenario), `PITFALL_BENCH_JSON` (also write the figures there as JSON).

mod common;

use common::{cpu_seconds, peak_rss_kb};
use pitfall_harness::scenario;
use pitfall_harness::sweep::{Limits, SeedStatus};
use pitfall_harness::system::Registry;
use pitfall_sim::runner::run_seed_measured;
use pitfall_sim::world::StepStats;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const START_SEED: u64 = 1000;
/// The child's environment variable: the scenario file it measures.
const CHILD: &str = "PITFALL_BENCH_CHILD";
/// Set for a child under callgrind: it runs the seeds only, so the count is
/// theirs (plus loading the scenario), not the echo's.
const NO_ECHO: &str = "PITFALL_BENCH_NO_ECHO";

fn main() {
    if let Ok(file) = std::env::var(CHILD) {
        let figures = measure_scenario(Path::new(&file), seeds());
        println!("{figures}");
        return;
    }
    let wanted: Option<Vec<String>> = std::env::var("PITFALL_BENCH_SCENARIOS")
        .ok()
        .map(|s| s.split(',').map(|n| n.trim().to_string()).collect());
    let callgrind = std::env::var("PITFALL_BENCH_CALLGRIND").is_ok_and(|v| v == "1");
    let mut rows = Vec::new();
    println!(
        "{} seeds per scenario (seeds {START_SEED}…), one at a time, CPU time",
        seeds()
    );
    println!(
        "{:<28} {:>10} {:>9} {:>10} {:>6} {:>6} {:>8} {:>10} {:>8} {:>7} {:>14}",
        "scenario",
        "seeds/CPUs",
        "sim/CPU",
        "steps/seed",
        "idle",
        "skip",
        "hosts/st",
        "frames/sd",
        "RSS MB",
        "echo ×",
        "instr/seed"
    );
    for (file, name) in load_suite() {
        if wanted.as_ref().is_some_and(|w| !w.contains(&name)) {
            continue;
        }
        let mut row = run_child(&file, false);
        if callgrind {
            row["instructions"] = run_child(&file, true)["instructions"].clone();
        }
        print_row(&name, &row);
        rows.push(json!({"scenario": name, "figures": row}));
    }
    let total_seeds: f64 = rows
        .iter()
        .map(|r| r["figures"]["seeds"].as_f64().unwrap_or(0.0))
        .sum();
    let cpu_s: f64 = rows
        .iter()
        .map(|r| r["figures"]["cpu_s"].as_f64().unwrap_or(0.0))
        .sum();
    println!(
        "suite: {total_seeds} seeds in {cpu_s:.1} CPU-s: {:.2} seeds per CPU-second",
        total_seeds / cpu_s
    );
    if let Ok(path) = std::env::var("PITFALL_BENCH_JSON") {
        let all = json!({"seeds_per_scenario": seeds(), "scenarios": rows,
            "suite_seeds_per_cpu_s": total_seeds / cpu_s});
        std::fs::write(&path, serde_json::to_string_pretty(&all).unwrap() + "\n")
            .expect("PITFALL_BENCH_JSON is writable");
    }
}

fn seeds() -> u64 {
    std::env::var("PITFALL_BENCH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25)
}

fn suite_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

fn registry() -> Registry {
    Registry::new(vec![Arc::new(pitfall_system::Shop)]).expect("one system")
}

/// The default suite's scenario files, sorted, with each one's name.
fn load_suite() -> Vec<(PathBuf, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(suite_dir())
        .expect("the suite folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = scenario::load_file(&p, &registry())
                .expect("the default suite loads")
                .name;
            (p, name)
        })
        .collect()
}

/// Measure one scenario in a child process (this benchmark again, with
/// [`CHILD`] set); under callgrind, only its instruction count.
fn run_child(file: &Path, callgrind: bool) -> Value {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let mut cmd = if callgrind {
        let mut c = Command::new("valgrind");
        c.args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
            .arg(&exe)
            .env(NO_ECHO, "1");
        c
    } else {
        Command::new(&exe)
    };
    let out = cmd
        .env(CHILD, file)
        .output()
        .expect("the benchmark can run itself");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", file.display());
    let mut figures: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("the child prints its figures");
    if callgrind {
        // "==pid== Collected : 123456789"
        let collected = stderr
            .lines()
            .find_map(|l| l.split("Collected :").nth(1))
            .and_then(|n| n.trim().parse::<f64>().ok());
        let seeds = figures["seeds"].as_f64().unwrap_or(1.0);
        figures["instructions"] = json!(collected.map(|n| n / seeds));
    }
    figures
}

fn print_row(name: &str, f: &Value) {
    let num = |k: &str| f[k].as_f64().unwrap_or(f64::NAN);
    let instr = f["instructions"]
        .as_f64()
        .map_or("-".to_string(), |n| format!("{n:.3e}"));
    println!(
        "{:<28} {:>10.2} {:>8.0}× {:>10.0} {:>5.0}% {:>5.0}% {:>8.2} {:>10.0} {:>8.1} {:>7.1} {:>14}",
        name,
        num("seeds") / num("cpu_s"),
        num("sim_s") / num("cpu_s"),
        num("steps") / num("seeds"),
        100.0 * num("idle_steps") / num("steps"),
        100.0 * num("skipped_steps") / num("steps"),
        num("host_ticks") / num("steps"),
        num("frames") / num("seeds"),
        num("peak_rss_kb") / 1024.0,
        num("cpu_s") / num("echo_cpu_s"),
        instr
    );
    // The figures still count a failed seed's cost; say so.
    if f["failed_seeds"].as_u64().is_some_and(|n| n > 0) {
        println!("  {name}: {} seed(s) failed to run", f["failed_seeds"]);
    }
}

/// The child: run the scenario's seeds one at a time on this thread, then
/// a bare echo of the same frame count; CPU time from `getrusage`.
fn measure_scenario(file: &Path, seeds: u64) -> Value {
    let scenario = scenario::load_file(file, &registry()).expect("the scenario loads");
    let cpu_start = cpu_seconds();
    let mut total = StepStats::default();
    let (mut sim_ms, mut failed) = (0u64, 0u64);
    for seed in START_SEED..START_SEED + seeds {
        let (run, stats) = run_seed_measured(&scenario, seed, Limits::default());
        total.steps += stats.steps;
        total.idle_steps += stats.idle_steps;
        total.skipped_steps += stats.skipped_steps;
        total.host_ticks += stats.host_ticks;
        total.frames += stats.frames;
        sim_ms += run.sim_ms;
        failed += u64::from(matches!(run.status, SeedStatus::Failed { .. }));
    }
    let cpu_s = cpu_seconds() - cpu_start;
    let peak_rss_kb = peak_rss_kb();
    let (echo_cpu_s, echo_steps) = if std::env::var_os(NO_ECHO).is_some() {
        (None, None)
    } else {
        let echo_start = cpu_seconds();
        let echo = pitfall_sim::echo::run(total.frames, scenario.run.tick_ms, START_SEED);
        (Some(cpu_seconds() - echo_start), Some(echo.steps))
    };
    json!({
        "seeds": seeds,
        "failed_seeds": failed,
        "cpu_s": cpu_s,
        "sim_s": sim_ms as f64 / 1000.0,
        "steps": total.steps,
        "idle_steps": total.idle_steps,
        "skipped_steps": total.skipped_steps,
        "host_ticks": total.host_ticks,
        "frames": total.frames,
        "peak_rss_kb": peak_rss_kb,
        "echo_cpu_s": echo_cpu_s,
        "echo_steps": echo_steps,
    })
}

/// The allocator of the `pitfall` binary, so that what this benchmark runs
/// costs what it costs there.
#[global_allocator]
static ALLOCATOR: pitfall::allocator::Allocator = pitfall::allocator::Allocator;
