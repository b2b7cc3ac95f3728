//! `report.json` and the summary table: per scenario, the expectation, whether
//! the sweep met it, and per invariant how many seeds violated it and the
//! first one, with the command that reproduces it. A report also says what
//! made it (command line, build, start time), whether its sweep completed,
//! and every finished seed's outcome, so an interrupted sweep can resume.

use crate::faults::{DrawnConfig, FaultPlan};
use crate::scenario::{Expect, Scenario};
use crate::sweep::SeedSummary;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InvariantReport {
    pub violating_seeds: u64,
    pub first_violating_seed: Option<u64>,
    /// What the first violation said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedPlan {
    pub config: DrawnConfig,
    pub plan: FaultPlan,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailedSeed {
    pub seed: u64,
    pub reason: String,
    pub repro: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub name: String,
    pub system: String,
    pub pitfall: Option<u8>,
    pub description: String,
    pub variants: BTreeMap<String, String>,
    pub expect: Expect,
    /// Invariants it may also violate without failing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerate: Vec<String>,
    /// The scenario file, and the SHA-256 of its text.
    pub file: String,
    pub file_sha256: String,
    /// Seeds that ran (completed or failed); a verdict counts only these.
    pub seeds: u64,
    /// Seeds the sweep was asked to run.
    pub seeds_asked: u64,
    pub start_seed: u64,
    pub met: bool,
    /// Why the expectation was not met, when it was not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmet: Vec<String>,
    pub invariants: BTreeMap<String, InvariantReport>,
    pub repro: Option<String>,
    pub failed_seeds: Vec<FailedSeed>,
    /// The drawn fault configuration and plan of every seed named above (the
    /// first violating seed of each invariant, and failed seeds), so they can
    /// be replayed or shrunk without rerunning the sweep.
    pub fault_plans: BTreeMap<u64, SeedPlan>,
    pub wall_seconds: f64,
    /// Simulated time in simulation; elapsed real time in real mode.
    pub simulated_seconds: f64,
    /// The system's figures over every seed (for the reference system,
    /// `payloads`: attachment sizes, reassembly memory and compression),
    /// under the key the system names.
    #[serde(flatten)]
    pub figures: BTreeMap<String, Value>,
    /// The summary table's line for the figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figures_line: Option<String>,
    /// Per coverage event ([`crate::coverage`]), how many seeds hit it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub coverage: BTreeMap<String, u64>,
    /// The coverage events the scenario declares some seed must hit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sometimes: Vec<String>,
    /// `run --shrink`: the first unexpectedly violating seed, shrunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shrunk: Option<ShrunkSeed>,
    /// What the mode adds (real mode: client settings and how each fault
    /// was handled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real: Option<Value>,
}

/// A seed shrunk to a minimal plan (`run --shrink`, `pitfall shrink`):
/// before → after of each size, and the plan file that replays it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShrunkSeed {
    pub seed: u64,
    pub invariant: String,
    pub windows: (usize, usize),
    pub orders: (String, String),
    pub history_lines: (usize, usize),
    /// Candidate runs the search took.
    pub runs: usize,
    pub plan: String,
    pub repro: String,
}

/// What made a report: enough to tell two reports apart and to refuse
/// resuming one with a different build or command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub pitfall_version: String,
    /// The git commit the binary was built from (`-dirty` when the tree had
    /// changes) and the cargo profile.
    pub build: String,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    pub command_line: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// False while the sweep runs and when it was interrupted: the verdicts
    /// then cover only the finished seeds, and `met` is false.
    pub complete: bool,
    #[serde(flatten)]
    pub provenance: Provenance,
    pub mode: String,
    /// What a seed reproduces in this mode.
    pub reproducibility: String,
    /// Seeds asked per scenario, from `start_seed`.
    pub seeds: u64,
    pub start_seed: u64,
    /// `I/N` when this run was one of N shards of the range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub check_determinism: bool,
    /// Seeds asked and seeds run, over every scenario.
    pub seeds_asked: u64,
    pub seeds_run: u64,
    pub met: bool,
    pub scenarios: Vec<ScenarioReport>,
    /// Every finished seed's outcome (`scenario` indexes `scenarios`).
    pub finished: Vec<SeedSummary>,
}

impl ScenarioReport {
    /// How many of the scenario's seeds hit coverage event `name`.
    pub fn seeds_hitting(&self, name: &str) -> u64 {
        self.coverage.get(name).copied().unwrap_or(0)
    }

    /// Whether a violation of `invariant` is one the scenario neither
    /// expects nor tolerates.
    pub fn is_unexpected(&self, invariant: &str) -> bool {
        !self.expect.expected().iter().any(|e| e == invariant)
            && !self.tolerate.iter().any(|t| t == invariant)
    }

    /// `invariant count (#first seed)` for each invariant some seed
    /// violated: the summary table's last column.
    pub fn violations_summary(&self) -> Vec<String> {
        self.invariants
            .iter()
            .filter(|(_, r)| r.violating_seeds > 0)
            .map(|(name, r)| {
                format!(
                    "{name} {} (#{})",
                    r.violating_seeds,
                    r.first_violating_seed.unwrap_or_default()
                )
            })
            .collect()
    }
}

/// How a report names the command that reproduces a seed: the program as
/// it was invoked, and the scenario by name when `repro` finds it by name
/// in its default folder, else by its file's path.
#[derive(Clone, Debug)]
pub struct Repro {
    pub program: String,
    /// The folder `repro` looks names up in by default.
    pub scenarios_dir: PathBuf,
}

impl Default for Repro {
    fn default() -> Self {
        Repro {
            program: "pitfall".into(),
            scenarios_dir: PathBuf::from("scenarios"),
        }
    }
}

impl Repro {
    /// The command that reruns `seed` of `scenario`.
    pub fn command(&self, scenario: &Scenario, seed: u64) -> String {
        format!(
            "{} repro {} --seed {seed}",
            self.program,
            self.target(scenario)
        )
    }

    fn target(&self, scenario: &Scenario) -> String {
        let canonical = |p: &Path| std::fs::canonicalize(p).ok();
        let dir = scenario.path.parent().and_then(canonical);
        if dir.is_some() && dir == canonical(&self.scenarios_dir) {
            return scenario.name.clone();
        }
        let path = scenario.path.display().to_string();
        if path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%".contains(c))
        {
            path
        } else {
            format!("'{}'", path.replace('\'', r"'\''"))
        }
    }
}

/// Whether a sweep judges the scenarios' `sometimes` lists: in
/// simulation, where the harness injects every fault itself, yes; in real
/// mode the coverage is reported, not required.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sometimes {
    Judged,
    Reported,
}

/// Judge one scenario's seeds against its expectation. `seeds_asked` is
/// how many the sweep was asked to run: fewer that ran fails it.
pub fn scenario_report(
    scenario: &Scenario,
    start_seed: u64,
    seeds_asked: u64,
    seeds: &[&SeedSummary],
    repro: &Repro,
    sometimes: Sometimes,
) -> ScenarioReport {
    let names: Vec<&'static str> = scenario.invariants().iter().map(|i| i.name).collect();
    let mut invariants: BTreeMap<String, InvariantReport> = BTreeMap::new();
    for &inv in &names {
        let violating: Vec<&&SeedSummary> =
            seeds.iter().filter(|s| s.violated.contains(inv)).collect();
        invariants.insert(
            inv.to_string(),
            InvariantReport {
                violating_seeds: violating.len() as u64,
                first_violating_seed: violating.first().map(|s| s.seed),
                example: violating.first().and_then(|s| s.examples.get(inv)).cloned(),
            },
        );
    }
    let failed_seeds: Vec<FailedSeed> = seeds
        .iter()
        .filter_map(|s| {
            s.failure.as_ref().map(|reason| FailedSeed {
                seed: s.seed,
                reason: reason.clone(),
                repro: repro.command(scenario, s.seed),
            })
        })
        .collect();
    let mut unmet = unmet(scenario, &names, &invariants, failed_seeds.len());
    if (seeds.len() as u64) < seeds_asked {
        unmet.insert(
            0,
            format!("only {} of {seeds_asked} seed(s) ran", seeds.len()),
        );
    }
    let coverage = coverage(scenario, seeds);
    if sometimes == Sometimes::Judged {
        unmet.extend(sometimes_unmet(scenario, seeds, &coverage));
    }
    let repro_seed = repro_seed(scenario, &names, &invariants, &failed_seeds);
    let fault_plans = failed_seeds
        .iter()
        .map(|f| f.seed)
        .chain(invariants.values().filter_map(|r| r.first_violating_seed))
        .map(|seed| {
            let (config, plan) = scenario.plan(seed);
            (seed, SeedPlan { config, plan })
        })
        .collect();
    let figures: Vec<&Value> = seeds.iter().filter_map(|s| s.figures.as_ref()).collect();
    let totals = if figures.is_empty() {
        None
    } else {
        scenario.system.total_figures(&figures)
    };
    ScenarioReport {
        name: scenario.name.clone(),
        system: scenario.system.name().to_string(),
        pitfall: scenario.pitfall,
        description: scenario.description.clone(),
        variants: scenario.variants(),
        expect: scenario.expect.clone(),
        tolerate: scenario.tolerate.clone(),
        file: scenario.path.display().to_string(),
        file_sha256: scenario.source_sha256.clone(),
        seeds: seeds.len() as u64,
        seeds_asked,
        start_seed,
        met: unmet.is_empty(),
        unmet,
        invariants,
        repro: repro_seed.map(|s| repro.command(scenario, s)),
        fault_plans,
        failed_seeds,
        wall_seconds: seeds.iter().map(|s| s.wall_ms).sum::<u64>() as f64 / 1000.0,
        simulated_seconds: seeds.iter().map(|s| s.sim_ms).sum::<u64>() as f64 / 1000.0,
        figures_line: totals.as_ref().map(|f| f.line.clone()),
        figures: totals.into_iter().map(|f| (f.key, f.value)).collect(),
        coverage,
        sometimes: scenario.sometimes.clone(),
        shrunk: None,
        real: None,
    }
}

/// Seeds per coverage event: every event some seed hit, and every declared
/// one (with 0 when none did).
fn coverage(scenario: &Scenario, seeds: &[&SeedSummary]) -> BTreeMap<String, u64> {
    let mut counts: BTreeMap<String, u64> = scenario
        .sometimes
        .iter()
        .map(|name| (name.clone(), 0))
        .collect();
    for name in seeds.iter().flat_map(|s| &s.coverage) {
        *counts.entry(name.clone()).or_default() += 1;
    }
    counts
}

/// A declared coverage event no seed hit, once enough seeds ran to judge.
fn sometimes_unmet(
    scenario: &Scenario,
    seeds: &[&SeedSummary],
    coverage: &BTreeMap<String, u64>,
) -> Vec<String> {
    let ran = seeds.iter().filter(|s| s.failure.is_none()).count() as u64;
    if ran < scenario.sometimes_min_seeds {
        return Vec::new();
    }
    scenario
        .sometimes
        .iter()
        .filter(|name| coverage.get(*name).copied().unwrap_or(0) == 0)
        .map(|name| {
            format!(
                "sometimes `{name}` never happened in {ran} seed(s): the fault or code path it marks was never exercised"
            )
        })
        .collect()
}

/// Why a scenario missed its expectation: seeds that failed to run, an
/// expected violation that never showed, an unexpected one that did.
fn unmet(
    scenario: &Scenario,
    names: &[&str],
    invariants: &BTreeMap<String, InvariantReport>,
    failed: usize,
) -> Vec<String> {
    let mut unmet = Vec::new();
    if failed > 0 {
        unmet.push(format!("{failed} seed(s) failed to run"));
    }
    let expected = scenario.expect.expected();
    for &inv in names {
        let r = &invariants[inv];
        if expected.iter().any(|e| e == inv) {
            if r.violating_seeds == 0 {
                unmet.push(format!(
                    "{inv} was expected to be violated but held on every seed"
                ));
            }
        } else if r.violating_seeds > 0 && !scenario.tolerate.iter().any(|t| t == inv) {
            unmet.push(format!(
                "{inv} was violated on {} seed(s), first {}",
                r.violating_seeds,
                r.first_violating_seed.unwrap_or_default()
            ));
        }
    }
    unmet
}

/// The seed worth reproducing: an unexpected failure first, else the first
/// seed that shows an expected violation.
fn repro_seed(
    scenario: &Scenario,
    names: &[&str],
    invariants: &BTreeMap<String, InvariantReport>,
    failed: &[FailedSeed],
) -> Option<u64> {
    let expected = scenario.expect.expected();
    let listed = |inv: &str, list: &[String]| list.iter().any(|e| e == inv);
    failed
        .first()
        .map(|f| f.seed)
        .or_else(|| {
            names
                .iter()
                .filter(|i| !listed(i, expected) && !listed(i, &scenario.tolerate))
                .find_map(|i| invariants[*i].first_violating_seed)
        })
        .or_else(|| {
            expected
                .iter()
                .find_map(|i| invariants.get(i).and_then(|r| r.first_violating_seed))
        })
}

impl Report {
    /// The crash- and fail-point events ([`crate::crash_points`]) fired in
    /// some seed of some scenario, and those that never fired; `None` when
    /// no scenario fired any (none allows them).
    pub fn point_coverage(&self) -> Option<(Vec<String>, Vec<String>)> {
        let fired = |name: &str| self.scenarios.iter().any(|s| s.seeds_hitting(name) > 0);
        let (hit, missed): (Vec<String>, Vec<String>) = crate::crash_points::Boundary::ALL
            .into_iter()
            .flat_map(|b| b.events().map(|(name, _)| name))
            .partition(|name| fired(name));
        (!hit.is_empty()).then_some((hit, missed))
    }

    /// The report's line on [`Report::point_coverage`]: how many points
    /// fired, and which never did.
    pub fn point_coverage_line(&self) -> Option<String> {
        let (hit, missed) = self.point_coverage()?;
        let mut line = format!(
            "crash and fail points fired across the suite: {} of {}",
            hit.len(),
            hit.len() + missed.len()
        );
        if !missed.is_empty() {
            let _ = write!(line, " (never: {})", missed.join(", "));
        }
        Some(line)
    }
}

/// The per-scenario summary table printed after a sweep.
pub fn render_table(report: &Report) -> String {
    let mut out = String::new();
    let width = report
        .scenarios
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let _ = writeln!(
        out,
        "{:<width$}  {:>2}  {:<34}  {:>5}  {:<4}  violating seeds per invariant (first seed)",
        "scenario", "pf", "expectation", "seeds", "met"
    );
    for s in &report.scenarios {
        let violations = s.violations_summary();
        let _ = writeln!(
            out,
            "{:<width$}  {:>2}  {:<34}  {:>5}  {:<4}  {}",
            s.name,
            s.pitfall.map_or("-".to_string(), |p| p.to_string()),
            s.expect.to_string(),
            s.seeds,
            if s.met { "yes" } else { "NO" },
            if violations.is_empty() {
                "none".into()
            } else {
                violations.join(", ")
            }
        );
        for why in &s.unmet {
            let _ = writeln!(out, "{:<width$}      ✗ {why}", "");
        }
        for f in s.failed_seeds.iter().take(5) {
            let first_line = f.reason.lines().next().unwrap_or_default();
            let _ = writeln!(
                out,
                "{:<width$}      seed {}: {first_line}\n{:<width$}        reproduce: {}",
                "", f.seed, "", f.repro
            );
        }
        if let Some(line) = &s.figures_line {
            let _ = writeln!(out, "{:<width$}      {line}", "");
        }
        if !s.met {
            if let Some(r) = &s.repro {
                let _ = writeln!(out, "{:<width$}      reproduce: {r}", "");
            }
        }
    }
    if let Some(line) = report.point_coverage_line() {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse;
    use crate::system::Registry;
    use crate::testing::ToySystem;
    use std::collections::BTreeSet;
    use std::sync::Arc;

    fn scenario() -> Scenario {
        let text = "name = \"t\"\ndescription = \"d\"\nexpect = \"holds\"\n[variants]\nmode = \"careful\"\n[faults]\nallowed = []\n";
        let registry = Registry::new(vec![Arc::new(ToySystem)]).unwrap();
        parse(Path::new("elsewhere/t.toml"), text, &registry).unwrap()
    }

    fn clean(seed: u64) -> SeedSummary {
        SeedSummary {
            scenario: 0,
            seed,
            failure: None,
            violated: BTreeSet::new(),
            examples: BTreeMap::new(),
            sim_ms: 1,
            wall_ms: 1,
            history_lines: 1,
            figures: None,
            coverage: BTreeSet::new(),
        }
    }

    #[test]
    fn a_verdict_counts_only_the_seeds_that_ran() {
        let s = scenario();
        let (a, b) = (clean(7), clean(8));
        let judged = Sometimes::Judged;
        let all = scenario_report(&s, 7, 2, &[&a, &b], &Repro::default(), judged);
        assert!(all.met, "{:?}", all.unmet);
        let some = scenario_report(&s, 7, 3, &[&a, &b], &Repro::default(), judged);
        assert!(!some.met);
        assert_eq!(some.unmet, ["only 2 of 3 seed(s) ran"]);
        let none = scenario_report(&s, 7, 1, &[], &Repro::default(), judged);
        assert_eq!((none.seeds, none.met), (0, false));
    }

    #[test]
    fn a_scenario_outside_the_default_folder_is_reproduced_by_path() {
        let s = scenario();
        assert_eq!(
            Repro::default().command(&s, 4),
            "pitfall repro elsewhere/t.toml --seed 4"
        );
        let mut spaced = s.clone();
        spaced.path = PathBuf::from("my dir/it's.toml");
        assert_eq!(
            Repro::default().command(&spaced, 4),
            r"pitfall repro 'my dir/it'\''s.toml' --seed 4"
        );
    }
}
