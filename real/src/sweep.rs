//! Real-mode seeds, one after another (they share the broker proxy and
//! Postgres, so faults of one would hit the other). Each seed's history is
//! written to disk for `pitfall check`; a panic fails only its seed.

use crate::runner::{run_seed, RealWorld};
use pitfall_harness::history::to_jsonl;
use pitfall_harness::scenario::Scenario;
use pitfall_harness::sweep::{summarize, SeedStatus, SeedSummary, SeedSummaryParts, Shard};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct RealOptions {
    pub seeds: u64,
    pub start_seed: u64,
    /// (scenario index, seed) pairs already run (a resumed sweep): skipped.
    pub skip: Arc<BTreeSet<(usize, u64)>>,
    /// Run only this shard's seeds.
    pub shard: Shard,
    /// Histories go to `<dir>/<scenario>/seed-<n>.jsonl`.
    pub history_dir: PathBuf,
}

pub fn history_path(dir: &Path, scenario: &str, seed: u64) -> PathBuf {
    dir.join(scenario).join(format!("seed-{seed}.jsonl"))
}

/// What a real-mode scenario report adds.
#[derive(Clone, Debug, Serialize)]
pub struct RealDetails {
    /// The pinned librdkafka settings of the scenario's clients, by kind:
    /// every distinct set.
    pub client_config: BTreeMap<String, Vec<BTreeMap<String, String>>>,
    /// Per fault in the seeds' plans: applied, emulated, or skipped and why.
    pub faults: BTreeMap<String, String>,
    /// Where each seed's history was written, for `pitfall check`.
    pub histories: String,
}

/// Run every seed of every scenario against the real services.
pub async fn run(
    world: Arc<RealWorld>,
    scenarios: &[Scenario],
    opts: &RealOptions,
    mut progress: impl FnMut(&SeedSummary),
) -> (Vec<SeedSummary>, Vec<RealDetails>) {
    let mut summaries = Vec::new();
    let mut details = Vec::new();
    for (idx, scenario) in scenarios.iter().enumerate() {
        let mut faults: BTreeMap<String, String> = BTreeMap::new();
        let mut client_config = BTreeMap::new();
        for seed in (0..opts.seeds)
            .filter(|i| opts.shard.has(*i))
            .map(|i| opts.start_seed + i)
        {
            if opts.skip.contains(&(idx, seed)) {
                continue;
            }
            let w = world.clone();
            let s = scenario.clone();
            #[allow(clippy::disallowed_methods)] // real mode: wall time is what a seed costs
            let started = std::time::Instant::now();
            let outcome = tokio::spawn(async move { run_seed(&w, &s, seed).await }).await;
            let wall_ms = started.elapsed().as_millis() as u64;
            let summary = match outcome {
                Ok(real) => {
                    faults.extend(real.fault_handling);
                    for (kind, sets) in real.clients.snapshot() {
                        let all: &mut Vec<_> = client_config.entry(kind).or_default();
                        for set in sets {
                            if !all.contains(&set) {
                                all.push(set);
                            }
                        }
                    }
                    let run = real.run;
                    let path = history_path(&opts.history_dir, &scenario.name, seed);
                    let written = std::fs::create_dir_all(path.parent().expect("a folder"))
                        .and_then(|()| std::fs::write(&path, to_jsonl(&run.history)));
                    let mut failure = match &run.status {
                        SeedStatus::Completed => None,
                        SeedStatus::Failed { reason } => Some(reason.clone()),
                    };
                    if let Err(e) = written {
                        failure.get_or_insert(format!("cannot write {}: {e}", path.display()));
                    }
                    summarize(
                        scenario,
                        idx,
                        seed,
                        SeedSummaryParts {
                            failure,
                            violations: run.violations,
                            sim_ms: run.sim_ms,
                            wall_ms,
                        },
                        &run.history,
                    )
                }
                Err(e) => summarize(
                    scenario,
                    idx,
                    seed,
                    SeedSummaryParts {
                        failure: Some(format!("panic: {e}")),
                        violations: Vec::new(),
                        sim_ms: 0,
                        wall_ms,
                    },
                    &[],
                ),
            };
            progress(&summary);
            summaries.push(summary);
        }
        details.push(RealDetails {
            client_config,
            faults,
            histories: opts.history_dir.join(&scenario.name).display().to_string(),
        });
    }
    (summaries, details)
}
