//! The readable reports of a run folder: which histories a report keeps
//! (`histories/<scenario>/seed-<n>.jsonl`), `report.html`, `report.md` and
//! `junit.xml` rendered from `report.json` and those histories, and `pitfall
//! report DIR`, which renders them again without rerunning anything.

use crate::cli::BAD_INPUT;
use pitfall_harness::checkers::{self, check_all};
use pitfall_harness::history::{parse_history, to_jsonl};
use pitfall_harness::report::Report;
use pitfall_harness::scenario::Scenario;
use pitfall_harness::sweep::{run_isolated, Limits};
use pitfall_harness::system::Registry;
use pitfall_render::{shown_seeds, Inputs, KeptSeed};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// A report folder, as `run` (either mode) or `merge` wrote it.
    dir: PathBuf,
}

/// Where a report folder keeps a seed's history.
pub fn history_path(dir: &Path, scenario: &str, seed: u64) -> PathBuf {
    pitfall_real::sweep::history_path(&dir.join("histories"), scenario, seed)
}

/// Simulation: rerun the seeds the report shows (a seed replays byte for
/// byte) and keep their histories in the folder, replacing any kept before.
pub fn keep_sim_histories(
    dir: &Path,
    report: &Report,
    scenarios: &[Scenario],
) -> Result<(), String> {
    let root = dir.join("histories");
    if root.exists() {
        std::fs::remove_dir_all(&root)
            .map_err(|e| format!("{}: cannot clear: {e}", root.display()))?;
    }
    for (index, scenario) in scenarios.iter().enumerate() {
        for seed in shown_seeds(report, index) {
            let (_, history) = run_isolated(
                pitfall_sim::runner::run_seed,
                scenario,
                seed,
                Limits::default(),
            );
            let path = history_path(dir, &scenario.name, seed);
            std::fs::create_dir_all(path.parent().expect("a folder"))
                .and_then(|()| std::fs::write(&path, to_jsonl(&history)))
                .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// Read the kept histories of the seeds the report shows and check them
/// again (for the violations' evidence lines). A seed whose history is
/// missing is rendered without it.
fn kept_seeds(
    dir: &Path,
    report: &Report,
    registry: &Registry,
) -> Result<BTreeMap<(String, u64), KeptSeed>, String> {
    let mut kept = BTreeMap::new();
    for (index, scenario) in report.scenarios.iter().enumerate() {
        let system = registry.get(&scenario.system).ok_or_else(|| {
            format!(
                "scenario {} is of system `{}`, which this command line does not know (it knows {})",
                scenario.name,
                scenario.system,
                registry.names().join(", ")
            )
        })?;
        let invariants = checkers::all(system);
        for seed in shown_seeds(report, index) {
            let path = history_path(dir, &scenario.name, seed);
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let history =
                parse_history(&text, &path.display().to_string()).map_err(|e| e.to_string())?;
            let violations = check_all(&invariants, &history);
            let latencies = system.latencies(&history);
            kept.insert(
                (scenario.name.clone(), seed),
                KeptSeed {
                    history,
                    violations,
                    latencies,
                },
            );
        }
    }
    Ok(kept)
}

/// Write `report.html`, `report.md` and `junit.xml` next to `report.json`.
pub fn write_all(dir: &Path, report: &Report, registry: &Registry) -> Result<(), String> {
    let kept = kept_seeds(dir, report, registry)?;
    let inputs = Inputs {
        report,
        kept: &kept,
    };
    let files = [
        ("report.html", pitfall_render::html::render(&inputs)),
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
