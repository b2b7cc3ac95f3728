//! Runs many seeds of many scenarios in parallel, isolating each seed: a panic
//! or a hang fails that seed with its repro command and never the sweep.
//!
//! This module is the one place outside the simulation that uses OS threads
//! and the wall clock: a worker pool (one simulation per thread at a time) and
//! a watchdog that abandons a worker stuck inside a single simulation step.

use crate::checkers::Violation;
use crate::faults::{DrawnConfig, FaultPlan};
use crate::history::{first_divergence, to_jsonl, Entry};
use crate::scenario::Scenario;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

/// Wall-clock limit of one seed, checked between simulation steps. A step
/// that never returns is the sweep's watchdog's business.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub wall: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall: Duration::from_secs(120),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SeedStatus {
    Completed,
    /// The seed itself failed (panic, hang, simulation error): a harness or
    /// system bug, never an expected violation.
    Failed {
        reason: String,
    },
}

/// Everything one seed's run produced.
pub struct SeedRun {
    pub seed: u64,
    pub status: SeedStatus,
    pub config: DrawnConfig,
    pub plan: FaultPlan,
    pub history: Vec<Entry>,
    pub violations: Vec<Violation>,
    /// Simulated time, or elapsed real time in real mode.
    pub sim_ms: u64,
}

#[derive(Clone, Debug)]
pub struct SweepOptions {
    pub seeds: u64,
    pub start_seed: u64,
    pub jobs: usize,
    pub check_determinism: bool,
    pub limits: Limits,
    /// (scenario index, seed) pairs already run (a resumed sweep): skipped.
    pub skip: Arc<BTreeSet<(usize, u64)>>,
    /// Run only this shard's seeds.
    pub shard: Shard,
    /// Pairs to run before the range (`--rerun-failures`), inside it or not.
    pub first: Arc<BTreeSet<(usize, u64)>>,
}

/// One of `count` disjoint parts of a seed range: the seeds `index`,
/// `index + count`, `index + 2·count`, … from the range's start, so shards
/// run on several machines and `pitfall merge` puts them back together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl Shard {
    /// Whether `seed` is in the range `start_seed`, `seeds` long, and this
    /// shard's.
    pub fn has_seed(&self, start_seed: u64, seeds: u64, seed: u64) -> bool {
        seed >= start_seed && seed - start_seed < seeds && self.has(seed - start_seed)
    }

    /// Whether the `i`-th seed of a range (from 0) is this shard's.
    pub fn has(&self, i: u64) -> bool {
        i % self.count == self.index
    }

    /// How many of a range's `seeds` are this shard's.
    pub fn len(&self, seeds: u64) -> u64 {
        if self.index >= seeds {
            0
        } else {
            (seeds - self.index).div_ceil(self.count)
        }
    }

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `I/N`, with `I` below `N`.
    fn from_str(text: &str) -> Result<Shard, String> {
        let bad = || format!("`{text}` is not a shard: write I/N with 0 ≤ I < N, as in 0/4");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count) = (i.trim().parse::<u64>(), n.trim().parse::<u64>());
        match (index, count) {
            (Ok(index), Ok(count)) if count >= 1 && index < count => Ok(Shard { index, count }),
            (Ok(index), Ok(count)) if count >= 1 => Err(format!(
                "shard {index}/{count}: the index must be below the count, 0 to {}",
                count - 1
            )),
            _ => Err(bad()),
        }
    }
}

/// The (scenario, seed) pairs of a sweep, handed out one at a time in
/// scenario-then-seed order and never materialized: a sweep of a billion
/// seeds costs no memory up front.
#[derive(Debug)]
pub struct SeedQueue {
    scenarios: usize,
    start_seed: u64,
    seeds: u64,
    /// Position in the scenario-major order of all pairs.
    next: u64,
    skip: Arc<BTreeSet<(usize, u64)>>,
    shard: Shard,
    first: Arc<BTreeSet<(usize, u64)>>,
    /// How many of `first` were handed out.
    first_done: usize,
}

impl SeedQueue {
    /// Every seed of `start_seed..start_seed + seeds` of each of `scenarios`
    /// scenarios, but those in `skip`. The caller has checked that the
    /// range does not overflow.
    pub fn new(
        scenarios: usize,
        start_seed: u64,
        seeds: u64,
        skip: Arc<BTreeSet<(usize, u64)>>,
    ) -> Self {
        SeedQueue {
            scenarios,
            start_seed,
            seeds,
            next: 0,
            skip,
            shard: Shard::default(),
            first: Arc::default(),
            first_done: 0,
        }
    }

    /// Hand out `first` (known failing seeds) before the range; a pair of
    /// the range among them runs only once, first.
    pub fn first(mut self, first: Arc<BTreeSet<(usize, u64)>>) -> Self {
        self.first = first;
        self
    }

    /// Whether a pair is in the range and the shard.
    fn in_range(&self, (i, s): (usize, u64)) -> bool {
        i < self.scenarios && self.shard.has_seed(self.start_seed, self.seeds, s)
    }

    /// Only `shard`'s seeds of the range.
    pub fn sharded(mut self, shard: Shard) -> Self {
        self.shard = shard;
        self
    }

    /// How many pairs the queue hands out in all.
    pub fn total(&self) -> u64 {
        let range = self.scenarios as u64 * self.shard.len(self.seeds);
        let skipped = self.skip.iter().filter(|p| self.in_range(**p)).count() as u64;
        let extra = self
            .first
            .iter()
            .filter(|p| !self.skip.contains(p) && !self.in_range(**p))
            .count() as u64;
        range - skipped + extra
    }
}

impl Iterator for SeedQueue {
    type Item = (usize, u64);

    fn next(&mut self) -> Option<(usize, u64)> {
        while let Some(&item) = self.first.iter().nth(self.first_done) {
            self.first_done += 1;
            if !self.skip.contains(&item) {
                return Some(item);
            }
        }
        while self.seeds > 0 && self.next / self.seeds < self.scenarios as u64 {
            let i = self.next % self.seeds;
            let item = ((self.next / self.seeds) as usize, self.start_seed + i);
            self.next += 1;
            if self.shard.has(i) && !self.skip.contains(&item) && !self.first.contains(&item) {
                return Some(item);
            }
        }
        None
    }
}

/// The outcome of one seed, small enough to keep for every seed. A report
/// keeps every one (`finished`), so an interrupted sweep can be resumed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedSummary {
    pub scenario: usize,
    pub seed: u64,
    /// Set when the seed failed to run (panic, hang, simulation error) or
    /// diverged between two runs.
    pub failure: Option<String>,
    pub violated: BTreeSet<String>,
    /// What the first violation of each invariant said, for the report.
    pub examples: BTreeMap<String, String>,
    pub sim_ms: u64,
    pub wall_ms: u64,
    pub history_lines: usize,
    /// The system's figures of this seed, if it has any.
    pub figures: Option<Value>,
    /// The coverage events the seed hit ([`crate::coverage`]).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub coverage: BTreeSet<String>,
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

/// A completed seed whose recorded history is not the shape of one run's
/// history ([`crate::history::check_shape`]) failed: the recorder, not the
/// system, is broken, and `pitfall check` would refuse the file.
pub fn self_check(status: SeedStatus, history: &[Entry]) -> SeedStatus {
    match (status, crate::history::check_shape(history, &[])) {
        (SeedStatus::Completed, Err((line, message))) => SeedStatus::Failed {
            reason: format!("the recorded history is malformed at line {line}: {message}"),
        },
        (status, _) => status,
    }
}

/// What runs one seed: the simulation's runner in production; tests
/// substitute misbehaving ones to prove the isolation.
pub type SeedFn = fn(&Scenario, u64, Limits) -> SeedRun;

/// Run one seed with panics contained. Returns the history too, for the
/// determinism check.
#[allow(clippy::disallowed_methods)] // wall time of a seed is reported, not simulated
pub fn run_isolated(
    seed_fn: SeedFn,
    scenario: &Scenario,
    seed: u64,
    limits: Limits,
) -> (SeedSummaryParts, Vec<Entry>) {
    install_panic_hook();
    CAPTURING.with(|c| *c.borrow_mut() = true);
    PANIC.with(|p| p.borrow_mut().take());
    let start = std::time::Instant::now();
    let result = panic::catch_unwind(AssertUnwindSafe(|| seed_fn(scenario, seed, limits)));
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

/// Boil one seed's outcome down to what the report needs.
pub fn summarize(
    scenario: &Scenario,
    index: usize,
    seed: u64,
    parts: SeedSummaryParts,
    history: &[Entry],
) -> SeedSummary {
    let mut examples = BTreeMap::new();
    for v in parts.violations {
        examples.entry(v.invariant).or_insert(v.message);
    }
    SeedSummary {
        scenario: index,
        seed,
        failure: parts.failure,
        violated: examples.keys().cloned().collect(),
        examples,
        sim_ms: parts.sim_ms,
        wall_ms: parts.wall_ms,
        history_lines: history.len(),
        figures: scenario.system.figures(history),
        coverage: crate::coverage::hit(history),
    }
}

fn run_item(
    seed_fn: SeedFn,
    scenarios: &[Scenario],
    (idx, seed): (usize, u64),
    opts: &SweepOptions,
) -> (SeedSummary, Vec<Entry>) {
    let scenario = &scenarios[idx];
    let (parts, history) = run_isolated(seed_fn, scenario, seed, opts.limits);
    if opts.check_determinism && parts.failure.is_none() {
        let (again, history2) = run_isolated(seed_fn, scenario, seed, opts.limits);
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
            return (summarize(scenario, idx, seed, parts, &history), history);
        }
    }
    (summarize(scenario, idx, seed, parts, &history), history)
}

/// What each worker is running — (scenario, seed) — and since when.
type Running = BTreeMap<usize, ((usize, u64), std::time::Instant)>;

/// Run every seed of every scenario with `seed_fn`. `progress` is called
/// once per finished seed, in completion order. Results come back sorted by
/// scenario and seed.
pub fn run(
    seed_fn: SeedFn,
    scenarios: &[Scenario],
    opts: &SweepOptions,
    mut progress: impl FnMut(&SeedSummary),
) -> Vec<SeedSummary> {
    run_keeping(seed_fn, scenarios, opts, |summary, _| progress(summary))
}

/// [`run`], handing `progress` each seed's history too (empty for a seed
/// whose worker hung): a caller that keeps some histories need not run
/// those seeds again.
#[allow(clippy::disallowed_methods)] // worker threads and the watchdog live outside the simulation
pub fn run_keeping(
    seed_fn: SeedFn,
    scenarios: &[Scenario],
    opts: &SweepOptions,
    mut progress: impl FnMut(&SeedSummary, Vec<Entry>),
) -> Vec<SeedSummary> {
    let queue = SeedQueue::new(
        scenarios.len(),
        opts.start_seed,
        opts.seeds,
        opts.skip.clone(),
    )
    .sharded(opts.shard)
    .first(opts.first.clone());
    let total = queue.total() as usize;
    let queue = Arc::new(Mutex::new(queue));
    let scenarios: Arc<Vec<Scenario>> = Arc::new(scenarios.to_vec());
    let (tx, rx) = mpsc::channel::<(usize, SeedSummary, Vec<Entry>)>();
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
                let Some(item) = queue.lock().unwrap().next() else {
                    return;
                };
                running
                    .lock()
                    .unwrap()
                    .insert(id, (item, std::time::Instant::now()));
                let (summary, history) = run_item(seed_fn, &scenarios, item, &opts);
                running.lock().unwrap().remove(&id);
                if tx.send((id, summary, history)).is_err() {
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
    let mut results = Vec::new();
    let mut done: BTreeSet<(usize, u64)> = BTreeSet::new();
    // A worker stuck in one step for this long is abandoned.
    let stuck_after = opts.limits.wall + opts.limits.wall / 2 + Duration::from_secs(5);
    while results.len() < total {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok((_, summary, history)) => {
                // An abandoned worker that came back late: already reported.
                if !done.insert((summary.scenario, summary.seed)) {
                    continue;
                }
                progress(&summary, history);
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
                        figures: None,
                        coverage: BTreeSet::new(),
                    };
                    progress(&summary, Vec::new());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse;
    use crate::system::Registry;
    use crate::testing::ToySystem;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn scenario() -> Scenario {
        parse(
            Path::new("t.toml"),
            r#"
name = "t"
description = "sweep isolation"
pitfall = 1
expect = "holds"
[variants]
mode = "careful"
[faults]
allowed = []
"#,
            &Registry::new(vec![Arc::new(ToySystem)]).unwrap(),
        )
        .unwrap()
    }

    static RELEASE_HANG: AtomicBool = AtomicBool::new(false);

    /// Panics on seed 1, spins (never yielding) on seed 2, completes cleanly
    /// otherwise.
    fn misbehaving(s: &Scenario, seed: u64, _: Limits) -> SeedRun {
        match seed {
            1 => panic!("boom in seed {seed}"),
            2 => {
                while !RELEASE_HANG.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            }
            _ => {}
        }
        let (config, plan) = s.plan(seed);
        SeedRun {
            seed,
            status: SeedStatus::Completed,
            config,
            plan,
            history: Vec::new(),
            violations: Vec::new(),
            sim_ms: 1,
        }
    }

    #[test]
    fn the_queue_walks_scenarios_then_seeds_and_skips_what_ran() {
        let skip = Arc::new(BTreeSet::from([(0, 11), (1, 10), (5, 10)]));
        let q = SeedQueue::new(2, 10, 3, skip);
        assert_eq!(q.total(), 4);
        let items: Vec<_> = q.collect();
        assert_eq!(items, [(0, 10), (0, 12), (1, 11), (1, 12)]);
        // Nothing is materialized: a huge range costs nothing up front.
        let mut huge = SeedQueue::new(
            3,
            u64::MAX - 1_000_000_000_000,
            1_000_000_000_000,
            Arc::default(),
        );
        assert_eq!(huge.total(), 3_000_000_000_000);
        assert_eq!(huge.next(), Some((0, u64::MAX - 1_000_000_000_000)));
        assert_eq!(SeedQueue::new(0, 0, 5, Arc::default()).next(), None);
        // Known failing seeds first, once, whether in the range or not.
        let first = Arc::new(BTreeSet::from([(0, 11), (1, 99)]));
        let q = SeedQueue::new(2, 10, 2, Arc::default()).first(first);
        assert_eq!(q.total(), 5);
        let items: Vec<_> = q.collect();
        assert_eq!(items, [(0, 11), (1, 99), (0, 10), (1, 10), (1, 11)]);
    }

    #[test]
    fn shards_split_a_range_into_disjoint_parts() {
        let shard = |text: &str| text.parse::<Shard>();
        let parts: Vec<Vec<(usize, u64)>> = (0..3)
            .map(|i| {
                let q = SeedQueue::new(2, 100, 7, Arc::default())
                    .sharded(shard(&format!("{i}/3")).unwrap());
                let total = q.total();
                let items: Vec<_> = q.collect();
                assert_eq!(items.len() as u64, total);
                items
            })
            .collect();
        assert_eq!(
            parts[0],
            [(0, 100), (0, 103), (0, 106), (1, 100), (1, 103), (1, 106)]
        );
        let mut all: Vec<_> = parts.concat();
        all.sort();
        assert_eq!(
            all,
            SeedQueue::new(2, 100, 7, Arc::default()).collect::<Vec<_>>()
        );
        assert_eq!(Shard { index: 5, count: 6 }.len(3), 0);
        for bad in ["3/2", "a/b", "1", "0/0", "-1/2", "2/2"] {
            assert!(shard(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_panic_or_a_hang_fails_only_its_own_seed() {
        let opts = SweepOptions {
            seeds: 5,
            start_seed: 0,
            jobs: 2,
            check_determinism: false,
            limits: Limits {
                wall: Duration::from_millis(200),
            },
            skip: Arc::default(),
            shard: Shard::default(),
            first: Arc::default(),
        };
        let results = run(misbehaving, &[scenario()], &opts, |_| {});
        RELEASE_HANG.store(true, Ordering::Relaxed);
        let failures: Vec<(u64, &str)> = results
            .iter()
            .filter_map(|r| r.failure.as_deref().map(|f| (r.seed, f)))
            .collect();
        assert_eq!(results.len(), 5, "every seed is reported once");
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert_eq!(failures[0].0, 1);
        assert!(
            failures[0].1.starts_with("panic: boom in seed 1 at "),
            "{}",
            failures[0].1
        );
        assert_eq!(failures[1].0, 2);
        assert!(failures[1].1.starts_with("hang: "), "{}", failures[1].1);
    }
}
