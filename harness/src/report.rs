//! `report.json` and the summary table: per scenario, the expectation, whether
//! the sweep met it, and per invariant how many seeds violated it and the
//! first one, with the command that reproduces it.

use crate::faults::{DrawnConfig, FaultPlan};
use crate::scenario::{Expect, Scenario};
use crate::sweep::SeedSummary;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Clone, Debug, Serialize)]
pub struct InvariantReport {
    pub violating_seeds: u64,
    pub first_violating_seed: Option<u64>,
    /// What the first violation said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SeedPlan {
    pub config: DrawnConfig,
    pub plan: FaultPlan,
}

#[derive(Clone, Debug, Serialize)]
pub struct FailedSeed {
    pub seed: u64,
    pub reason: String,
    pub repro: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    pub name: String,
    pub system: String,
    pub pitfall: Option<u8>,
    pub description: String,
    pub variants: BTreeMap<String, String>,
    pub expect: Expect,
    pub seeds: u64,
    pub start_seed: u64,
    pub met: bool,
    /// Why the expectation was not met, when it was not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
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
    #[serde(skip)]
    pub figures_line: Option<String>,
    /// What the mode adds (real mode: client settings and how each fault
    /// was handled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub real: Option<Value>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub mode: String,
    /// What a seed reproduces in this mode.
    pub reproducibility: String,
    pub seeds: u64,
    pub start_seed: u64,
    pub check_determinism: bool,
    pub met: bool,
    pub scenarios: Vec<ScenarioReport>,
}

pub fn repro_command(scenario: &str, seed: u64) -> String {
    format!("pitfall repro {scenario} --seed {seed}")
}

/// Judge one scenario's seeds against its expectation.
pub fn scenario_report(
    scenario: &Scenario,
    start_seed: u64,
    seeds: &[&SeedSummary],
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
                example: violating
                    .first()
                    .and_then(|s| s.examples.get(inv))
                    .map(|v| v.message.clone()),
            },
        );
    }
    let failed_seeds: Vec<FailedSeed> = seeds
        .iter()
        .filter_map(|s| {
            s.failure.as_ref().map(|reason| FailedSeed {
                seed: s.seed,
                reason: reason.clone(),
                repro: repro_command(&scenario.name, s.seed),
            })
        })
        .collect();
    let unmet = unmet(scenario, &names, &invariants, failed_seeds.len());
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
        seeds: seeds.len() as u64,
        start_seed,
        met: unmet.is_empty(),
        unmet,
        invariants,
        repro: repro_seed.map(|s| repro_command(&scenario.name, s)),
        fault_plans,
        failed_seeds,
        wall_seconds: seeds.iter().map(|s| s.wall_ms).sum::<u64>() as f64 / 1000.0,
        simulated_seconds: seeds.iter().map(|s| s.sim_ms).sum::<u64>() as f64 / 1000.0,
        figures_line: totals.as_ref().map(|f| f.line.clone()),
        figures: totals.into_iter().map(|f| (f.key, f.value)).collect(),
        real: None,
    }
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
        let violations: Vec<String> = s
            .invariants
            .iter()
            .filter(|(_, r)| r.violating_seeds > 0)
            .map(|(name, r)| {
                format!(
                    "{name} {} (#{})",
                    r.violating_seeds,
                    r.first_violating_seed.unwrap_or_default()
                )
            })
            .collect();
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
    out
}
