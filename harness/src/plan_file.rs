//! Plan files: one seed's drawn configuration, fault plan and workload
//! sizes as TOML a person can read and edit, replayed by `repro --plan` and
//! written by `shrink`. What a file pins, a run takes from it; the seed
//! still decides everything else (network timing, which order goes when).
//! Files are strict input: an unknown key, a fault the scenario does not
//! allow, a target it cannot have, or a window past the chaos phase is an
//! error with file, line and column.

use crate::faults::{DrawnConfig, FaultPlan, FaultWindow};
use crate::scenario::{InputError, Scenario, ScenarioText, Spanned};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// What a plan file pins.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pinned {
    pub config: DrawnConfig,
    pub plan: FaultPlan,
    /// Workload sizes by name (`orders`, `shoppers`, …: the system's
    /// [`crate::system::Config::workload`]); absent ones keep the scenario's.
    pub workload: BTreeMap<String, u64>,
    /// The workload items kept, by kind (indices into the seed's draw:
    /// [`crate::system::Config::items`]); an absent kind keeps them all.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub items: BTreeMap<String, Vec<u64>>,
}

/// The file as written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "W: Deserialize<'de>"))]
struct File<W> {
    scenario: String,
    seed: u64,
    config: DrawnConfig,
    #[serde(default)]
    workload: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    items: BTreeMap<String, Vec<u64>>,
    #[serde(default, rename = "window")]
    windows: Vec<W>,
}

/// A plan file's text for `seed` of `scenario`.
pub fn to_toml(scenario: &Scenario, seed: u64, pinned: &Pinned) -> String {
    let file = File {
        scenario: scenario.name.clone(),
        seed,
        config: pinned.config.clone(),
        workload: pinned.workload.clone(),
        items: pinned.items.clone(),
        windows: pinned.plan.windows.clone(),
    };
    format!(
        "# A fault plan for `pitfall repro {} --seed {seed} --plan <this file>`.\n\
         # Edit freely: drop windows, shorten them, lower the workload.\n\n{}",
        scenario.name,
        toml::to_string(&file).expect("a plan serializes")
    )
}

/// What the seed of a scenario pins today: its drawn plan and the
/// scenario's workload sizes.
pub fn drawn(scenario: &Scenario, seed: u64) -> Pinned {
    let (config, plan) = scenario.plan(seed);
    Pinned {
        config,
        plan,
        workload: scenario.config.workload(),
        items: BTreeMap::new(),
    }
}

/// Parse and check a plan file against the scenario it is for. Returns the
/// seed it names and what it pins.
pub fn parse(path: &Path, text: &str, scenario: &Scenario) -> Result<(u64, Pinned), InputError> {
    let file_text = ScenarioText { path, text };
    let file: File<Spanned<FaultWindow>> = file_text.parse()?;
    if file.scenario != scenario.name {
        return Err(InputError::whole_file(
            path,
            format!(
                "the plan is for scenario `{}`, not `{}`",
                file.scenario, scenario.name
            ),
        ));
    }
    let chaos_ms = scenario.run.chaos_ms();
    let mut windows = Vec::new();
    for w in file.windows {
        let at = w.span().start;
        let w = w.into_inner();
        let spec = scenario.faults.iter().find(|f| f.name == w.fault);
        let problem = match spec {
            None => Some(format!(
                "fault `{}` is not allowed by scenario {} (it allows {})",
                w.fault,
                scenario.name,
                scenario
                    .faults
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(spec) if spec.kind != w.kind => Some(format!(
                "fault `{}` is of kind {:?}, not {:?}",
                w.fault, spec.kind, w.kind
            )),
            Some(spec) if !spec.targets.contains(&w.target) => Some(format!(
                "unknown target `{}` for `{}`: expected one of {}",
                w.target,
                w.fault,
                spec.targets.join(", ")
            )),
            Some(_) if w.start_ms >= w.end_ms => Some(format!(
                "the window ends ({} ms) before it starts ({} ms)",
                w.end_ms, w.start_ms
            )),
            Some(_) if w.end_ms > chaos_ms => Some(format!(
                "the window ends at {} ms, past the end of the run's chaos phase ({chaos_ms} ms)",
                w.end_ms
            )),
            Some(_) if w.probability.is_some_and(|p| !(0.0..=1.0).contains(&p)) => {
                Some("probability must be between 0 and 1".into())
            }
            Some(_) => None,
        };
        if let Some(message) = problem {
            return Err(file_text.error_at(at, message));
        }
        windows.push(w);
    }
    windows.sort_by_key(|w| w.start_ms);
    let known = scenario.config.workload();
    if let Some(k) = file.workload.keys().find(|k| !known.contains_key(*k)) {
        return Err(InputError::whole_file(
            path,
            format!(
                "unknown workload size `{k}`, expected one of {}",
                known.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    Ok((
        file.seed,
        Pinned {
            config: file.config,
            plan: FaultPlan { windows },
            workload: file.workload,
            items: file.items,
        },
    ))
}

impl Scenario {
    /// This scenario with `pinned`'s workload sizes and its plan in place of
    /// every seed's draw.
    pub fn pinned(&self, pinned: Pinned) -> Result<Scenario, String> {
        let mut s = self.clone();
        if !pinned.workload.is_empty() {
            s.config = s.config.with_workload(&pinned.workload)?;
        }
        if !pinned.items.is_empty() {
            s.config = s.config.with_items(&pinned.items)?;
        }
        s.topology = s.config.topology();
        s.pinned = Some(Arc::new(pinned));
        Ok(s)
    }
}
