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
use pitfall_harness::report::ShrunkSeed;
use pitfall_harness::scenario::{self, Scenario};
use pitfall_harness::shrink;
use pitfall_harness::sweep::{run_isolated, Limits};
use pitfall_harness::system::Registry;
use pitfall_sim::runner::run_seed;
use std::path::{Path, PathBuf};

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
    wanted: Option<&str>,
    seed: u64,
    scenario: &Scenario,
    violations: &[Violation],
) -> Result<String, (u8, String)> {
    let violated: Vec<&str> = violations.iter().map(|v| v.invariant.as_str()).collect();
    if let Some(wanted) = wanted {
        let known: Vec<&str> = scenario.invariants().iter().map(|i| i.name).collect();
        if !known.contains(&wanted) {
            return Err((
                BAD_INPUT,
                format!(
                    "unknown invariant `{wanted}`, expected one of {}",
                    known.join(", ")
                ),
            ));
        }
        if !violated.contains(&wanted) {
            return Err((
                1,
                format!("seed {seed} does not violate {wanted}: nothing to shrink"),
            ));
        }
        return Ok(wanted.to_string());
    }
    scenario
        .expect
        .expected()
        .iter()
        .find(|e| violated.contains(&e.as_str()))
        .cloned()
        .or_else(|| violated.first().map(|v| v.to_string()))
        .ok_or_else(|| {
            (
                1,
                format!("seed {seed} violates nothing: nothing to shrink"),
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

/// What a shrink found.
pub struct Outcome {
    pub invariant: String,
    pub before: Pinned,
    pub after: Pinned,
    pub before_lines: usize,
    pub after_lines: usize,
    pub runs: usize,
    /// The minimal plan's run: its history and the kept invariant's
    /// violations.
    pub history: Vec<Entry>,
    pub violations: Vec<Violation>,
}

impl Outcome {
    /// What a report says of it.
    pub fn summary(&self, seed: u64, plan: &Path, scenario: &Scenario) -> ShrunkSeed {
        ShrunkSeed {
            seed,
            invariant: self.invariant.clone(),
            windows: (
                self.before.plan.windows.len(),
                self.after.plan.windows.len(),
            ),
            orders: (orders(&self.before), orders(&self.after)),
            history_lines: (self.before_lines, self.after_lines),
            runs: self.runs,
            plan: plan.display().to_string(),
            repro: format!(
                "pitfall repro {} --plan {}",
                scenario.path.display(),
                plan.display()
            ),
        }
    }
}

/// Shrink `seed` of `scenario` keeping `invariant` (or the first it
/// violates) violated. `Err((exit code, message))` when there is nothing to
/// shrink or the input is bad.
pub fn shrink_seed(
    scenario: &Scenario,
    seed: u64,
    invariant: Option<&str>,
    max_runs: usize,
    jobs: usize,
) -> Result<Outcome, (u8, String)> {
    let before = plan_file::drawn(scenario, seed);
    let (history, violations) =
        run_one(scenario, seed).map_err(|f| (1, format!("seed {seed} failed to run: {f}")))?;
    let invariant = target(invariant, seed, scenario, &violations)?;
    let mut judge_fn = |cs: &[Pinned]| judge(scenario, seed, &invariant, jobs, cs);
    // Every item of the seed's draw, for the search to drop one by one.
    let mut start = before.clone();
    for (kind, n) in scenario.config.items() {
        start.items.insert(kind, (0..n).collect());
    }
    let shrunk = shrink::shrink(start, &mut judge_fn, max_runs);
    let minimal = scenario
        .pinned(shrunk.plan.clone())
        .map_err(|e| (1, format!("the minimal plan does not apply: {e}")))?;
    let (after_history, after_violations) =
        run_one(&minimal, seed).map_err(|f| (1, format!("the minimal plan failed to run: {f}")))?;
    Ok(Outcome {
        before,
        after: shrunk.plan,
        before_lines: history.len(),
        after_lines: after_history.len(),
        runs: shrunk.runs,
        history: after_history,
        violations: after_violations
            .into_iter()
            .filter(|v| v.invariant == invariant)
            .collect(),
        invariant,
    })
}

/// The default number of seeds run in parallel: the cores.
pub fn default_jobs(jobs: Option<u64>) -> usize {
    jobs.map(|j| j as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
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
    let jobs = default_jobs(args.jobs);
    let shrunk = match shrink_seed(
        &scenario,
        args.seed,
        args.invariant.as_deref(),
        args.max_runs as usize,
        jobs,
    ) {
        Ok(o) => o,
        Err((code, message)) => {
            eprintln!(
                "{}{message}",
                if code == BAD_INPUT { "error: " } else { "" }
            );
            return code;
        }
    };
    println!(
        "shrinking {}, seed {}, keeping {} violated",
        scenario.name, args.seed, shrunk.invariant
    );
    println!(
        "before: {} window(s), {} order(s), {} history lines\nafter:  {} window(s), {} order(s), {} history lines  ({} candidate runs)",
        shrunk.before.plan.windows.len(),
        orders(&shrunk.before),
        shrunk.before_lines,
        shrunk.after.plan.windows.len(),
        orders(&shrunk.after),
        shrunk.after_lines,
        shrunk.runs
    );
    let sizes: Vec<String> = shrunk
        .after
        .workload
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    println!("workload: {}", sizes.join(", "));
    println!("minimal plan:");
    print!("{}", render_timeline(&shrunk.after.plan));
    let invariants: Vec<_> = scenario
        .invariants()
        .into_iter()
        .filter(|i| i.name == shrunk.invariant)
        .collect();
    verdicts::print(&invariants, &shrunk.history, &shrunk.violations);
    if let Err(e) = std::fs::write(
        &out,
        plan_file::to_toml(&scenario, args.seed, &shrunk.after),
    ) {
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
