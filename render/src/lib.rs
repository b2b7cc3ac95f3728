//! Renders a run's report for people and CI systems: `report.html` (one
//! self-contained page with SVG charts), `report.md` (a pull-request
//! summary) and `junit.xml`. Renderers are pure functions of [`Inputs`]:
//! the report and the histories (with their checkers' verdicts) that the
//! run kept, so `pitfall report DIR` renders the same files again without
//! rerunning anything.

pub mod html;
pub mod junit;
pub mod markdown;
mod svg;

use pitfall_harness::checkers::Violation;
use pitfall_harness::history::Entry;
use pitfall_harness::report::{Report, ScenarioReport};
use pitfall_harness::system::Latencies;
use std::collections::{BTreeMap, BTreeSet};

/// How many violating seeds per scenario and invariant a report shows (and
/// keeps the history of).
pub const SHOWN_PER_INVARIANT: usize = 5;

/// One kept seed: its history and what the checkers found in it.
#[derive(Clone, Debug, Default)]
pub struct KeptSeed {
    pub history: Vec<Entry>,
    pub violations: Vec<Violation>,
    /// The system's own end-to-end latencies, when it measures them; else
    /// the page plots append to first consumption.
    pub latencies: Option<Latencies>,
}

/// Where renderers get the kept seeds from: one at a time, when they draw
/// it, so a report holds a single parsed history however many it shows (a
/// run keeps up to a few hundred).
pub trait KeptSeeds {
    /// Kept seed `seed` of scenario `scenario` (see [`shown_seeds`]), or
    /// `None` when its history was not kept.
    fn kept_seed(&self, scenario: &str, seed: u64) -> Option<KeptSeed>;
}

/// Kept seeds by (scenario name, seed), already in memory.
impl KeptSeeds for BTreeMap<(String, u64), KeptSeed> {
    fn kept_seed(&self, scenario: &str, seed: u64) -> Option<KeptSeed> {
        self.get(&(scenario.to_string(), seed)).cloned()
    }
}

/// What every renderer reads.
pub struct Inputs<'a> {
    pub report: &'a Report,
    pub kept: &'a dyn KeptSeeds,
}

impl Inputs<'_> {
    /// Kept seed `seed` of `scenario`, when its history was kept and holds
    /// anything.
    pub fn kept(&self, scenario: &str, seed: u64) -> Option<KeptSeed> {
        self.kept
            .kept_seed(scenario, seed)
            .filter(|k| !k.history.is_empty())
    }
}

/// Seeds of scenario `index` that violated `invariant`, in seed order.
pub fn violating_seeds(report: &Report, index: usize, invariant: &str) -> Vec<u64> {
    report
        .finished
        .iter()
        .filter(|s| s.scenario == index && s.violated.contains(invariant))
        .map(|s| s.seed)
        .collect()
}

/// The seeds a report shows, whose histories a run keeps: the scenario's
/// first seed that ran (for its latency and rate plots), the first
/// [`SHOWN_PER_INVARIANT`] violating seeds of each invariant, and the first
/// as many seeds that failed to run.
pub fn shown_seeds(report: &Report, index: usize) -> BTreeSet<u64> {
    let scenario: &ScenarioReport = &report.scenarios[index];
    let mine = || report.finished.iter().filter(move |s| s.scenario == index);
    let mut seeds: BTreeSet<u64> = mine().map(|s| s.seed).min().into_iter().collect();
    for invariant in scenario.invariants.keys() {
        seeds.extend(
            violating_seeds(report, index, invariant)
                .into_iter()
                .take(SHOWN_PER_INVARIANT),
        );
    }
    seeds.extend(
        mine()
            .filter(|s| s.failure.is_some())
            .map(|s| s.seed)
            .take(SHOWN_PER_INVARIANT),
    );
    seeds
}

/// The command that reproduces `seed` of a scenario: its report's repro
/// command with the seed replaced.
pub fn repro_for(scenario: &ScenarioReport, seed: u64) -> Option<String> {
    let repro = scenario.repro.as_deref()?;
    let (command, _) = repro.rsplit_once(" --seed ")?;
    Some(format!("{command} --seed {seed}"))
}
