//! `pitfall shrink SCENARIO --seed N`: from a violating seed, search for the
//! smallest plan (fewer and shorter fault windows, a smaller workload, lower
//! probabilities) that still violates the same invariant, running the
//! candidates of each round in parallel; print the before and after, the
//! minimal plan's timeline and the violation, and write the plan file that
//! `repro --plan` replays.

use super::verdicts;
use crate::cli::BAD_INPUT;
use pitfall_harness::checkers::Violation;
use pitfall_harness::faults::render_timeline;
use pitfall_harness::history::Entry;
use pitfall_harness::plan_file::{self, Pinned};
use pitfall_harness::scenario::{self, Scenario};
use pitfall_harness::shrink;
use pitfall_harness::sweep::{run_isolated, Limits};
use pitfall_harness::system::Registry;
use pitfall_sim::runner::run_seed;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Scenario name or file stem (looked up in --scenarios), or path to a
    /// scenario file.
    scenario: String,
    /// The violating seed to shrink.
    #[arg(long)]
    seed: u64,
    /// The invariant that must stay violated (default: the first the seed
    /// violates, the scenario's expected ones first).
    #[arg(long)]
    invariant: Option<String>,
    /// At most this many candidate runs.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    max_runs: u64,
    /// Candidates run in parallel (default: the number of cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    jobs: Option<u64>,
    /// Where the plan file goes (default:
    /// reports/shrink/<scenario>-seed-<n>.toml).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Folder of scenario files.
    #[arg(long, default_value = "scenarios")]
    scenarios: PathBuf,
}

/// One run of a (pinned) scenario: its history and violations, or why it
/// failed to run.
fn run_one(scenario: &Scenario, seed: u64) -> Result<(Vec<Entry>, Vec<Violation>), String> {
    let (parts, history) = run_isolated(run_seed, scenario, seed, Limits::default());
    match parts.failure {
        Some(f) => Err(f),
        None => Ok((history, parts.violations)),
    }
}

/// Whether each candidate still violates `invariant`, running `jobs` at a
/// time.
#[allow(clippy::disallowed_methods)] // one simulation per OS thread, as the sweep runs them
fn judge(
    scenario: &Scenario,
    seed: u64,
    invariant: &str,
    jobs: usize,
    candidates: &[Pinned],
) -> Vec<bool> {
    let fails = |c: &Pinned| {
        scenario.pinned(c.clone()).ok().is_some_and(|s| {
            run_one(&s, seed).is_ok_and(|(_, v)| v.iter().any(|v| v.invariant == invariant))
        })
    };
    let mut out = Vec::with_capacity(candidates.len());
    for batch in candidates.chunks(jobs.max(1)) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .iter()
                .map(|c| {
                    std::thread::Builder::new()
                        .stack_size(64 << 20)
                        .spawn_scoped(scope, || fails(c))
                        .expect("spawn a shrink worker")
                })
                .collect();
            out.extend(handles.into_iter().map(|h| h.join().unwrap_or(false)));
        });
    }
    out
}

/// The invariant to keep: the one asked for, or the first violated.
fn target(
    args: &Args,
    scenario: &Scenario,
    violations: &[Violation],
) -> Result<String, (u8, String)> {
    let violated: Vec<&str> = violations.iter().map(|v| v.invariant.as_str()).collect();
    if let Some(wanted) = &args.invariant {
        let known: Vec<&str> = scenario.invariants().iter().map(|i| i.name).collect();
        if !known.contains(&wanted.as_str()) {
            return Err((
                BAD_INPUT,
                format!(
                    "unknown invariant `{wanted}`, expected one of {}",
                    known.join(", ")
                ),
            ));
        }
        if !violated.contains(&wanted.as_str()) {
            return Err((
                1,
                format!(
                    "seed {} does not violate {wanted}: nothing to shrink",
                    args.seed
                ),
            ));
        }
        return Ok(wanted.clone());
    }
    let expected = scenario.expect.expected();
    expected
        .iter()
        .find(|e| violated.contains(&e.as_str()))
        .cloned()
        .or_else(|| violated.first().map(|v| v.to_string()))
        .ok_or_else(|| {
            (
                1,
                format!("seed {} violates nothing: nothing to shrink", args.seed),
            )
        })
}

/// How many orders a plan runs: the items it keeps, else its size.
fn orders(p: &Pinned) -> String {
    match (p.items.get("orders"), p.workload.get("orders")) {
        (Some(kept), _) => kept.len().to_string(),
        (None, Some(n)) => n.to_string(),
        (None, None) => "-".into(),
    }
}

pub fn run(args: Args, registry: &Registry) -> u8 {
    let scenario = match scenario::find(&args.scenario, &args.scenarios, registry) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return BAD_INPUT;
        }
    };
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("reports/shrink").join(format!("{}-seed-{}.toml", scenario.name, args.seed))
    });
    if let Err(e) = out
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::File::create(&out).map(|_| ()))
    {
        eprintln!("error: {}: cannot write: {e}", out.display());
        return BAD_INPUT;
    }
    let before = plan_file::drawn(&scenario, args.seed);
    let (history, violations) = match run_one(&scenario, args.seed) {
        Ok(r) => r,
        Err(f) => {
            println!("seed {} failed to run: {f}", args.seed);
            return 1;
        }
    };
    let invariant = match target(&args, &scenario, &violations) {
        Ok(i) => i,
        Err((code, message)) => {
            eprintln!(
                "{}{message}",
                if code == BAD_INPUT { "error: " } else { "" }
            );
            return code;
        }
    };
    println!(
        "shrinking {}, seed {}, keeping {invariant} violated",
        scenario.name, args.seed
    );
    let jobs = args
        .jobs
        .map(|j| j as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut judge_fn = |cs: &[Pinned]| judge(&scenario, args.seed, &invariant, jobs, cs);
    // Every item of the seed's draw, for the search to drop one by one.
    let mut start = before.clone();
    for (kind, n) in scenario.config.items() {
        start.items.insert(kind, (0..n).collect());
    }
    let shrunk = shrink::shrink(start, &mut judge_fn, args.max_runs as usize);
    let minimal = scenario
        .pinned(shrunk.plan.clone())
        .expect("a candidate that ran");
    let (after_history, after_violations) = match run_one(&minimal, args.seed) {
        Ok(r) => r,
        Err(f) => {
            println!("the minimal plan failed to run: {f}");
            return 1;
        }
    };
    println!(
        "before: {} window(s), {} order(s), {} history lines\nafter:  {} window(s), {} order(s), {} history lines  ({} candidate runs)",
        before.plan.windows.len(),
        orders(&before),
        history.len(),
        shrunk.plan.plan.windows.len(),
        orders(&shrunk.plan),
        after_history.len(),
        shrunk.runs
    );
    let sizes: Vec<String> = shrunk
        .plan
        .workload
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    println!("workload: {}", sizes.join(", "));
    println!("minimal plan:");
    print!("{}", render_timeline(&shrunk.plan.plan));
    let kept: Vec<Violation> = after_violations
        .into_iter()
        .filter(|v| v.invariant == invariant)
        .collect();
    let invariants: Vec<_> = scenario
        .invariants()
        .into_iter()
        .filter(|i| i.name == invariant)
        .collect();
    verdicts::print(&invariants, &after_history, &kept);
    if let Err(e) = std::fs::write(&out, plan_file::to_toml(&scenario, args.seed, &shrunk.plan)) {
        eprintln!("error: {}: cannot write: {e}", out.display());
        return BAD_INPUT;
    }
    println!("plan: {}", out.display());
    println!(
        "reproduce: pitfall repro {} --plan {}",
        scenario.path.display(),
        out.display()
    );
    0
}
