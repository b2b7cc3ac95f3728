//! The readable reports of a run folder: which histories a report keeps
//! (`histories/<scenario>/seed-<n>.jsonl`), `report.html`, `report.md` and
//! `junit.xml` rendered from `report.json` and those histories, and `pitfall
//! report DIR`, which renders them again without rerunning anything.

use crate::cli::BAD_INPUT;
use pitfall_harness::checkers::{self, check_all};
use pitfall_harness::history::{parse_history, to_jsonl, Entry};
use pitfall_harness::report::Report;
use pitfall_harness::scenario::Scenario;
use pitfall_harness::sweep::{run_isolated, Limits, SeedSummary};
use pitfall_harness::system::{Registry, System};
use pitfall_render::{shown_seeds, Inputs, KeptSeed, KeptSeeds, SHOWN_PER_INVARIANT};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// A report folder, as `run` (either mode) or `merge` wrote it.
    dir: PathBuf,
}

/// Where a report folder keeps a seed's history.
pub fn history_path(dir: &Path, scenario: &str, seed: u64) -> PathBuf {
    pitfall_real::sweep::history_path(&dir.join("histories"), scenario, seed)
}

/// Simulation: keep the histories of the seeds the report shows in the
/// folder, replacing any kept before. A seed whose history `kept` holds
/// from the sweep is not run again; any other (one a resumed run finished
/// before, say) is rerun, as a seed replays byte for byte.
pub fn keep_sim_histories(
    dir: &Path,
    report: &Report,
    scenarios: &[Scenario],
    kept: &ShownCandidates,
) -> Result<(), String> {
    let root = dir.join("histories");
    if root.exists() {
        std::fs::remove_dir_all(&root)
            .map_err(|e| format!("{}: cannot clear: {e}", root.display()))?;
    }
    for (index, scenario) in scenarios.iter().enumerate() {
        for seed in shown_seeds(report, index) {
            let path = history_path(dir, &scenario.name, seed);
            std::fs::create_dir_all(path.parent().expect("a folder"))
                .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
            let staged = kept.path(index, seed);
            if staged.exists() {
                std::fs::rename(&staged, &path).map_err(|e| {
                    format!(
                        "{}: cannot move to {}: {e}",
                        staged.display(),
                        path.display()
                    )
                })?;
                continue;
            }
            let (_, history) = run_isolated(
                pitfall_sim::runner::run_seed,
                scenario,
                seed,
                Limits::default(),
            );
            std::fs::write(&path, to_jsonl(&history))
                .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        }
    }
    kept.remove()
}

/// The histories a sweep hands over that its report may show, kept in a
/// staging folder as the seeds finish (so `run` need not run them again):
/// a seed is kept when it is, among the seeds of its scenario finished so
/// far, the lowest, or one of the lowest [`SHOWN_PER_INVARIANT`] violating
/// an invariant or failing to run. Every seed the final report shows
/// ([`shown_seeds`]) was such a seed when it finished. A few kept early are
/// displaced by lower seeds finishing later; [`keep_sim_histories`] leaves
/// those behind with the folder.
pub struct ShownCandidates {
    staging: PathBuf,
    names: Vec<String>,
    lowest: BTreeMap<usize, Lowest>,
}

/// Per scenario, the lowest seeds finished so far, as [`ShownCandidates`]
/// counts them.
#[derive(Default)]
struct Lowest {
    seed: Option<u64>,
    violating: BTreeMap<String, BTreeSet<u64>>,
    failing: BTreeSet<u64>,
}

impl ShownCandidates {
    /// Candidates staged under `dir` (cleared first: what an interrupted
    /// run left there is not this run's).
    pub fn new(dir: &Path, scenarios: &[Scenario]) -> Result<Self, String> {
        let staging = Self::staging(dir);
        if staging.exists() {
            std::fs::remove_dir_all(&staging)
                .map_err(|e| format!("{}: cannot clear: {e}", staging.display()))?;
        }
        Ok(ShownCandidates {
            staging,
            names: scenarios.iter().map(|s| s.name.clone()).collect(),
            lowest: BTreeMap::new(),
        })
    }

    /// Where the candidates of a run writing to `dir` are staged.
    pub fn staging(dir: &Path) -> PathBuf {
        dir.join("histories.staged")
    }

    /// A seed finished with `history`: keep it if the report may show it.
    pub fn offer(&mut self, summary: &SeedSummary, history: &[Entry]) -> Result<(), String> {
        if history.is_empty() || !self.is_candidate(summary) {
            return Ok(());
        }
        let path = self.path(summary.scenario, summary.seed);
        std::fs::create_dir_all(path.parent().expect("a folder"))
            .and_then(|()| std::fs::write(&path, to_jsonl(history)))
            .map_err(|e| format!("{}: cannot write: {e}", path.display()))
    }

    fn is_candidate(&mut self, s: &SeedSummary) -> bool {
        let lowest = self.lowest.entry(s.scenario).or_default();
        let mut keep = false;
        if lowest.seed.is_none_or(|l| s.seed < l) {
            lowest.seed = Some(s.seed);
            keep = true;
        }
        for invariant in &s.violated {
            let seeds = lowest.violating.entry(invariant.clone()).or_default();
            keep |= among_lowest(seeds, s.seed);
        }
        if s.failure.is_some() {
            keep |= among_lowest(&mut lowest.failing, s.seed);
        }
        keep
    }

    fn path(&self, scenario: usize, seed: u64) -> PathBuf {
        let name = self.names.get(scenario).map_or("", String::as_str);
        pitfall_real::sweep::history_path(&self.staging, name, seed)
    }

    /// Remove the staging folder and what is left in it.
    pub fn remove(&self) -> Result<(), String> {
        match std::fs::remove_dir_all(&self.staging) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("{}: cannot remove: {e}", self.staging.display()))
            }
            _ => Ok(()),
        }
    }
}

/// Add `seed` to `seeds`, the lowest [`SHOWN_PER_INVARIANT`] seen so far;
/// whether it is among them.
fn among_lowest(seeds: &mut BTreeSet<u64>, seed: u64) -> bool {
    seeds.insert(seed);
    if seeds.len() > SHOWN_PER_INVARIANT {
        return seeds.pop_last() != Some(seed);
    }
    true
}

/// The kept histories of the seeds a report shows, read from the folder and
/// checked again (for the violations' evidence lines) when a renderer asks
/// for one, so one parsed history is in memory at a time. A seed whose
/// history is missing is rendered without it; the first history that does
/// not parse is kept as the rendering's error.
struct KeptOnDisk<'a> {
    dir: &'a Path,
    /// Each scenario's system, by scenario name.
    systems: BTreeMap<&'a str, &'a Arc<dyn System>>,
    error: RefCell<Option<String>>,
}

impl<'a> KeptOnDisk<'a> {
    fn new(dir: &'a Path, report: &'a Report, registry: &'a Registry) -> Result<Self, String> {
        let mut systems = BTreeMap::new();
        for scenario in &report.scenarios {
            let system = registry.get(&scenario.system).ok_or_else(|| {
                format!(
                    "scenario {} is of system `{}`, which this command line does not know (it knows {})",
                    scenario.name,
                    scenario.system,
                    registry.names().join(", ")
                )
            })?;
            systems.insert(scenario.name.as_str(), system);
        }
        Ok(KeptOnDisk {
            dir,
            systems,
            error: RefCell::new(None),
        })
    }

    fn read(&self, scenario: &str, seed: u64) -> Result<Option<KeptSeed>, String> {
        let Some(system) = self.systems.get(scenario) else {
            return Ok(None);
        };
        let path = history_path(self.dir, scenario, seed);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        let history =
            parse_history(&text, &path.display().to_string()).map_err(|e| e.to_string())?;
        drop(text);
        let violations = check_all(&checkers::all(system), &history);
        let latencies = system.latencies(&history);
        Ok(Some(KeptSeed {
            history,
            violations,
            latencies,
        }))
    }
}

impl KeptSeeds for KeptOnDisk<'_> {
    fn kept_seed(&self, scenario: &str, seed: u64) -> Option<KeptSeed> {
        self.read(scenario, seed).unwrap_or_else(|e| {
            self.error.borrow_mut().get_or_insert(e);
            None
        })
    }
}

/// Write `report.html`, `report.md` and `junit.xml` next to `report.json`.
pub fn write_all(dir: &Path, report: &Report, registry: &Registry) -> Result<(), String> {
    let kept = KeptOnDisk::new(dir, report, registry)?;
    let inputs = Inputs {
        report,
        kept: &kept,
    };
    let html = pitfall_render::html::render(&inputs);
    if let Some(e) = kept.error.take() {
        return Err(e);
    }
    let files = [
        ("report.html", html),
        ("report.md", pitfall_render::markdown::render(&inputs)),
        ("junit.xml", pitfall_render::junit::render(&inputs)),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
    }
    Ok(())
}

/// Read a report folder's `report.json`.
pub fn read_report(dir: &Path) -> Result<Report, String> {
    let path = dir.join("report.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: cannot read: {e} (is {} a report folder?)",
            path.display(),
            dir.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}:{}:{}: not a pitfall report: {e}",
            path.display(),
            e.line(),
            e.column()
        )
    })
}

/// `pitfall report DIR`.
pub fn run(args: Args, registry: &Registry) -> u8 {
    let result = read_report(&args.dir).and_then(|report| write_all(&args.dir, &report, registry));
    match result {
        Ok(()) => {
            for name in ["report.html", "report.md", "junit.xml"] {
                println!("{}", args.dir.join(name).display());
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            BAD_INPUT
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Lowest, ShownCandidates, SHOWN_PER_INVARIANT};
    use pitfall_harness::sweep::SeedSummary;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::PathBuf;

    fn finished(seed: u64, violated: &[&str], failed: bool) -> SeedSummary {
        SeedSummary {
            scenario: 0,
            seed,
            failure: failed.then(|| "panic".to_string()),
            violated: violated.iter().map(|v| v.to_string()).collect(),
            examples: BTreeMap::new(),
            sim_ms: 0,
            wall_ms: 0,
            history_lines: 0,
            figures: None,
            coverage: BTreeSet::new(),
        }
    }

    fn candidates() -> ShownCandidates {
        ShownCandidates {
            staging: PathBuf::from("unused"),
            names: vec!["s".into()],
            lowest: BTreeMap::<usize, Lowest>::new(),
        }
    }

    /// Whatever order seeds finish in, each one a report would show is a
    /// candidate when it finishes: the lowest seed, the lowest violating
    /// ones per invariant, the lowest failing ones.
    #[test]
    fn a_seed_the_report_shows_is_a_candidate_when_it_finishes() {
        let n = 3 * SHOWN_PER_INVARIANT as u64;
        // Seeds finish out of order: odd ones first, descending, then even.
        let order: Vec<u64> = (0..n)
            .rev()
            .filter(|s| s % 2 == 1)
            .chain((0..n).filter(|s| s % 2 == 0))
            .collect();
        let violates = |s: u64| !s.is_multiple_of(3);
        let fails = |s: u64| s % 4 == 1;
        let mut shown = candidates();
        let kept: BTreeSet<u64> = order
            .iter()
            .filter(|&&s| {
                let v: &[&str] = if violates(s) { &["queue"] } else { &[] };
                shown.is_candidate(&finished(s, v, fails(s)))
            })
            .copied()
            .collect();
        let first = |p: &dyn Fn(u64) -> bool| -> Vec<u64> {
            (0..n).filter(|&s| p(s)).take(SHOWN_PER_INVARIANT).collect()
        };
        let mut expected: BTreeSet<u64> = BTreeSet::from([0]);
        expected.extend(first(&violates));
        expected.extend(first(&fails));
        assert!(expected.is_subset(&kept), "{expected:?} not in {kept:?}");
        // A seed finishing after enough lower ones is not kept.
        assert!(!kept.contains(&(n - 1)), "{kept:?}");
    }
}
