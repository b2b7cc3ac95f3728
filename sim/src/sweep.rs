//! Runs many seeds of many scenarios in parallel, isolating each seed: a panic
//! or a hang fails that seed with its repro command and never the sweep.
//!
//! This module is the one place outside the simulation that uses OS threads
//! and the wall clock: a worker pool (one simulation per thread at a time) and
//! a watchdog that abandons a worker stuck inside a single simulation step.

use crate::checkers::{Invariant, Violation};
use crate::history::{first_divergence, to_jsonl, Entry};
use crate::runner::{run_seed, Limits, SeedStatus};
use crate::scenario::Scenario;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct SweepOptions {
    pub seeds: u64,
    pub start_seed: u64,
    pub jobs: usize,
    pub check_determinism: bool,
    pub limits: Limits,
}

/// The outcome of one seed, small enough to keep for every seed.
#[derive(Clone, Debug)]
pub struct SeedSummary {
    pub scenario: usize,
    pub seed: u64,
    /// Set when the seed failed to run (panic, hang, simulation error) or
    /// diverged between two runs.
    pub failure: Option<String>,
    pub violated: BTreeSet<Invariant>,
    /// The first violation of each invariant, for the report.
    pub examples: BTreeMap<Invariant, Violation>,
    pub sim_ms: u64,
    pub wall_ms: u64,
    pub history_lines: usize,
}

thread_local! {
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    static CAPTURING: RefCell<bool> = const { RefCell::new(false) };
}

/// Install (once) a panic hook that, on sweep workers, records the panic
/// message and location for the seed instead of printing it.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CAPTURING.with(|c| *c.borrow()) {
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic".into());
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                PANIC.with(|p| {
                    p.borrow_mut().get_or_insert(format!("panic: {msg}{at}"));
                });
            } else {
                default(info);
            }
        }));
    });
}

/// Run one seed with panics contained. Returns the history too, for the
/// determinism check.
#[allow(clippy::disallowed_methods)] // wall time of a seed is reported, not simulated
pub fn run_isolated(
    scenario: &Scenario,
    seed: u64,
    limits: Limits,
) -> (SeedSummaryParts, Vec<Entry>) {
    install_panic_hook();
    CAPTURING.with(|c| *c.borrow_mut() = true);
    PANIC.with(|p| p.borrow_mut().take());
    let start = std::time::Instant::now();
    let result = panic::catch_unwind(AssertUnwindSafe(|| run_seed(scenario, seed, limits)));
    CAPTURING.with(|c| *c.borrow_mut() = false);
    let wall_ms = start.elapsed().as_millis() as u64;
    let recorded = PANIC.with(|p| p.borrow_mut().take());
    match result {
        Ok(run) => {
            let failure = match (&run.status, recorded) {
                (SeedStatus::Failed { reason }, Some(panic)) => Some(format!("{reason} ({panic})")),
                (SeedStatus::Failed { reason }, None) => Some(reason.clone()),
                // A panic in a spawned task that the runtime swallowed.
                (SeedStatus::Completed, Some(panic)) => Some(panic),
                (SeedStatus::Completed, None) => None,
            };
            let parts = SeedSummaryParts {
                failure,
                violations: run.violations,
                sim_ms: run.sim_ms,
                wall_ms,
            };
            (parts, run.history)
        }
        Err(_) => (
            SeedSummaryParts {
                failure: Some(recorded.unwrap_or_else(|| "panic".into())),
                violations: Vec::new(),
                sim_ms: 0,
                wall_ms,
            },
            Vec::new(),
        ),
    }
}

/// What one isolated run yields.
pub struct SeedSummaryParts {
    pub failure: Option<String>,
    pub violations: Vec<Violation>,
    pub sim_ms: u64,
    pub wall_ms: u64,
}

fn summarize(
    scenario: usize,
    seed: u64,
    parts: SeedSummaryParts,
    history_lines: usize,
) -> SeedSummary {
    let mut examples = BTreeMap::new();
    for v in parts.violations {
        examples.entry(v.invariant).or_insert(v);
    }
    SeedSummary {
        scenario,
        seed,
        failure: parts.failure,
        violated: examples.keys().copied().collect(),
        examples,
        sim_ms: parts.sim_ms,
        wall_ms: parts.wall_ms,
        history_lines,
    }
}

fn run_item(scenarios: &[Scenario], (idx, seed): (usize, u64), opts: &SweepOptions) -> SeedSummary {
    let scenario = &scenarios[idx];
    let (parts, history) = run_isolated(scenario, seed, opts.limits);
    let lines = history.len();
    if opts.check_determinism && parts.failure.is_none() {
        let (again, history2) = run_isolated(scenario, seed, opts.limits);
        let (a, b) = (to_jsonl(&history), to_jsonl(&history2));
        let failure = match (again.failure, first_divergence(&a, &b)) {
            (Some(f), _) => Some(format!("second run failed: {f}")),
            (None, Some((line, x, y))) => Some(format!(
                "nondeterministic: the two runs diverge at history line {line}:\n  first:  {x}\n  second: {y}"
            )),
            (None, None) => None,
        };
        if let Some(failure) = failure {
            let parts = SeedSummaryParts {
                failure: Some(failure),
                ..parts
            };
            return summarize(idx, seed, parts, lines);
        }
    }
    summarize(idx, seed, parts, lines)
}

/// What each worker is running — (scenario, seed) — and since when.
type Running = BTreeMap<usize, ((usize, u64), std::time::Instant)>;

/// Run every seed of every scenario. `progress` is called once per finished
/// seed, in completion order. Results come back sorted by scenario and seed.
#[allow(clippy::disallowed_methods)] // worker threads and the watchdog live outside the simulation
pub fn run(
    scenarios: &[Scenario],
    opts: &SweepOptions,
    mut progress: impl FnMut(&SeedSummary),
) -> Vec<SeedSummary> {
    let queue: VecDeque<(usize, u64)> = (0..scenarios.len())
        .flat_map(|i| (opts.start_seed..opts.start_seed + opts.seeds).map(move |s| (i, s)))
        .collect();
    let total = queue.len();
    let queue = Arc::new(Mutex::new(queue));
    let scenarios: Arc<Vec<Scenario>> = Arc::new(scenarios.to_vec());
    let (tx, rx) = mpsc::channel::<(usize, SeedSummary)>();
    let running: Arc<Mutex<Running>> = Arc::default();

    let spawn_worker = |id: usize| {
        let queue = queue.clone();
        let scenarios = scenarios.clone();
        let tx = tx.clone();
        let running = running.clone();
        let opts = opts.clone();
        std::thread::Builder::new()
            .name(format!("seed-worker-{id}"))
            .stack_size(64 << 20)
            .spawn(move || loop {
                let Some(item) = queue.lock().unwrap().pop_front() else {
                    return;
                };
                running
                    .lock()
                    .unwrap()
                    .insert(id, (item, std::time::Instant::now()));
                let summary = run_item(&scenarios, item, &opts);
                running.lock().unwrap().remove(&id);
                if tx.send((id, summary)).is_err() {
                    return;
                }
            })
            .expect("spawn a seed worker");
    };
    let jobs = opts.jobs.max(1);
    for id in 0..jobs {
        spawn_worker(id);
    }
    let mut next_worker = jobs;
    let mut results = Vec::with_capacity(total);
    let mut done: BTreeSet<(usize, u64)> = BTreeSet::new();
    // A worker stuck in one step for this long is abandoned.
    let stuck_after = opts.limits.wall + opts.limits.wall / 2 + Duration::from_secs(5);
    while results.len() < total {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok((_, summary)) => {
                // An abandoned worker that came back late: already reported.
                if !done.insert((summary.scenario, summary.seed)) {
                    continue;
                }
                progress(&summary);
                results.push(summary);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let stuck: Vec<(usize, (usize, u64))> = running
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(_, (_, since))| since.elapsed() > stuck_after)
                    .map(|(id, (item, _))| (*id, *item))
                    .collect();
                for (id, (scenario, seed)) in stuck {
                    running.lock().unwrap().remove(&id);
                    done.insert((scenario, seed));
                    let summary = SeedSummary {
                        scenario,
                        seed,
                        failure: Some(format!(
                            "hang: a single simulation step ran longer than {stuck_after:?} of wall-clock time"
                        )),
                        violated: BTreeSet::new(),
                        examples: BTreeMap::new(),
                        sim_ms: 0,
                        wall_ms: stuck_after.as_millis() as u64,
                        history_lines: 0,
                    };
                    progress(&summary);
                    results.push(summary);
                    // The stuck thread is left behind; replace it.
                    spawn_worker(next_worker);
                    next_worker += 1;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    results.sort_by_key(|s| (s.scenario, s.seed));
    results
}
