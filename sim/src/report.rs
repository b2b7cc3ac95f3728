//! `report.json` and the summary table: per scenario, the expectation, whether
//! the sweep met it, and per invariant how many seeds violated it and the
//! first one, with the command that reproduces it.

use crate::checkers::payload::PayloadFigures;
use crate::checkers::Invariant;
use crate::faults::{DrawnConfig, FaultPlan};
use crate::runner::plan_for;
use crate::scenario::{Expect, Scenario};
use crate::sweep::SeedSummary;
use serde::Serialize;
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
    pub pitfall: u8,
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
    /// Pitfall 4: attachment sizes, reassembly memory and compression, over
    /// every seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payloads: Option<PayloadReport>,
    /// Real mode only: client settings and how each fault kind was handled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub real: Option<RealDetails>,
}

/// Pitfall 4's figures over a sweep.
#[derive(Clone, Debug, Serialize)]
pub struct PayloadReport {
    pub attachments: u64,
    pub archived: u64,
    pub largest_attachment_bytes: u64,
    /// The archive's reassembly-memory high-water mark over every seed: the
    /// bound the strategy keeps.
    pub peak_reassembly_bytes: u64,
    /// Bytes before / after compression over compressed records; absent
    /// when nothing was compressed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression_ratio: Option<f64>,
}

impl PayloadReport {
    fn over(seeds: &[&SeedSummary]) -> Option<PayloadReport> {
        let figures: Vec<&PayloadFigures> =
            seeds.iter().filter_map(|s| s.payloads.as_ref()).collect();
        if figures.is_empty() {
            return None;
        }
        let sum = |f: fn(&PayloadFigures) -> u64| figures.iter().map(|x| f(x)).sum::<u64>();
        let max = |f: fn(&PayloadFigures) -> u64| figures.iter().map(|x| f(x)).max().unwrap_or(0);
        let (raw, packed) = (sum(|f| f.uncompressed_bytes), sum(|f| f.compressed_bytes));
        Some(PayloadReport {
            attachments: sum(|f| f.attachments),
            archived: sum(|f| f.archived),
            largest_attachment_bytes: max(|f| f.largest_bytes),
            peak_reassembly_bytes: max(|f| f.peak_reassembly_bytes),
            compression_ratio: (packed > 0)
                .then(|| (raw as f64 / packed as f64 * 100.0).round() / 100.0),
        })
    }
}

/// What a real-mode scenario report adds.
#[derive(Clone, Debug, Serialize)]
pub struct RealDetails {
    /// The pinned librdkafka settings, by client kind.
    pub client_config: BTreeMap<String, BTreeMap<String, String>>,
    /// Per fault kind in the seeds' plans: applied, emulated, or skipped and
    /// why.
    pub faults: BTreeMap<String, String>,
    /// Where each seed's history was written, for `pitfall check`.
    pub histories: String,
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
    let mut invariants = BTreeMap::new();
    for inv in Invariant::ALL {
        let violating: Vec<&&SeedSummary> =
            seeds.iter().filter(|s| s.violated.contains(&inv)).collect();
        invariants.insert(
            inv,
            InvariantReport {
                violating_seeds: violating.len() as u64,
                first_violating_seed: violating.first().map(|s| s.seed),
                example: violating
                    .first()
                    .and_then(|s| s.examples.get(&inv))
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

    let mut unmet = Vec::new();
    if !failed_seeds.is_empty() {
        unmet.push(format!("{} seed(s) failed to run", failed_seeds.len()));
    }
    let expected: &[Invariant] = match &scenario.expect {
        Expect::Holds => &[],
        Expect::Violated(list) => list,
    };
    for inv in Invariant::ALL {
        let r = &invariants[&inv];
        if expected.contains(&inv) {
            if r.violating_seeds == 0 {
                unmet.push(format!(
                    "{} was expected to be violated but held on every seed",
                    inv.name()
                ));
            }
        } else if r.violating_seeds > 0 && !scenario.tolerate.contains(&inv) {
            unmet.push(format!(
                "{} was violated on {} seed(s), first {}",
                inv.name(),
                r.violating_seeds,
                r.first_violating_seed.unwrap_or_default()
            ));
        }
    }
    // The seed worth reproducing: an unexpected failure first, else the first
    // seed that shows an expected violation.
    let repro_seed = failed_seeds
        .first()
        .map(|f| f.seed)
        .or_else(|| {
            Invariant::ALL
                .iter()
                .filter(|i| !expected.contains(i) && !scenario.tolerate.contains(i))
                .find_map(|i| invariants[i].first_violating_seed)
        })
        .or_else(|| {
            expected
                .iter()
                .find_map(|i| invariants[i].first_violating_seed)
        });

    let fault_plans = failed_seeds
        .iter()
        .map(|f| f.seed)
        .chain(invariants.values().filter_map(|r| r.first_violating_seed))
        .map(|seed| {
            let (config, plan) = plan_for(scenario, seed);
            (seed, SeedPlan { config, plan })
        })
        .collect();
    ScenarioReport {
        name: scenario.name.clone(),
        pitfall: scenario.pitfall,
        description: scenario.description.clone(),
        variants: scenario.variant_names(),
        payloads: PayloadReport::over(seeds),
        expect: scenario.expect.clone(),
        seeds: seeds.len() as u64,
        start_seed,
        met: unmet.is_empty(),
        unmet,
        invariants: invariants
            .into_iter()
            .map(|(k, v)| (k.name().to_string(), v))
            .collect(),
        repro: repro_seed.map(|s| repro_command(&scenario.name, s)),
        fault_plans,
        failed_seeds,
        wall_seconds: seeds.iter().map(|s| s.wall_ms).sum::<u64>() as f64 / 1000.0,
        simulated_seconds: seeds.iter().map(|s| s.sim_ms).sum::<u64>() as f64 / 1000.0,
        real: None,
    }
}

fn expect_text(e: &Expect) -> String {
    match e {
        Expect::Holds => "holds".into(),
        Expect::Violated(list) => format!(
            "violates {}",
            list.iter().map(|i| i.name()).collect::<Vec<_>>().join(", ")
        ),
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
            s.pitfall,
            expect_text(&s.expect),
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
        if let Some(p) = &s.payloads {
            let mib = |b: u64| b as f64 / (1 << 20) as f64;
            let ratio = p
                .compression_ratio
                .map_or(String::new(), |r| format!(", compression {r:.2}x"));
            let _ = writeln!(
                out,
                "{:<width$}      payloads: {} archived of {}, largest {:.1} MiB, peak reassembly memory {:.1} MiB{ratio}",
                "",
                p.archived,
                p.attachments,
                mib(p.largest_attachment_bytes),
                mib(p.peak_reassembly_bytes)
            );
        }
        if !s.met {
            if let Some(r) = &s.repro {
                let _ = writeln!(out, "{:<width$}      reproduce: {r}", "");
            }
        }
    }
    out
}
