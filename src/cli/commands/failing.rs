//! The failing-seed corpus, `<report-dir>/failing-seeds.toml`: every seed
//! that failed a run (a violation its scenario does not expect or
//! tolerate, or a seed that failed to run), with its scenario, file and
//! build, kept across runs. `run --rerun-failures` runs them first, as
//! TigerBeetle's and FoundationDB's fleets rerun known failing seeds.

use pitfall_harness::report::Report;
use pitfall_harness::scenario::Scenario;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The corpus file in a report folder.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("failing-seeds.toml")
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    #[serde(default)]
    seed: Vec<Entry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    scenario: String,
    file: String,
    seed: u64,
    /// The build it last failed with (a seed reproduces with its build).
    build: String,
    reason: String,
}

fn read(dir: &Path) -> Result<Corpus, String> {
    let path = path(dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let (l, c) = pitfall_harness::scenario::line_and_column(&text, s.start);
                    format!(":{l}:{c}")
                })
                .unwrap_or_default();
            format!("{}{at}: {}", path.display(), e.message().trim())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Corpus::default()),
        Err(e) => Err(format!("{}: cannot read: {e}", path.display())),
    }
}

/// Add the report's failing seeds to the corpus (one entry per scenario
/// and seed, the latest build kept). Returns how many it added.
pub fn record(dir: &Path, report: &Report) -> Result<usize, String> {
    let mut corpus = read(dir)?;
    let mut entries: BTreeMap<(String, u64), Entry> = corpus
        .seed
        .drain(..)
        .map(|e| ((e.scenario.clone(), e.seed), e))
        .collect();
    let before = entries.len();
    for s in &report.finished {
        let scenario = &report.scenarios[s.scenario];
        let unexpected: Vec<&str> = s
            .violated
            .iter()
            .map(String::as_str)
            .filter(|i| scenario.is_unexpected(i))
            .collect();
        let reason = match (&s.failure, unexpected.is_empty()) {
            (Some(f), _) => f.lines().next().unwrap_or_default().to_string(),
            (None, false) => format!("violated {}", unexpected.join(", ")),
            (None, true) => continue,
        };
        entries.insert(
            (scenario.name.clone(), s.seed),
            Entry {
                scenario: scenario.name.clone(),
                file: scenario.file.clone(),
                seed: s.seed,
                build: report.provenance.build.clone(),
                reason,
            },
        );
    }
    let added = entries.len() - before;
    if entries.is_empty() {
        return Ok(0);
    }
    corpus.seed = entries.into_values().collect();
    let text = format!(
        "# Seeds that failed a run of pitfall: rerun them first with\n# `pitfall run --rerun-failures`. Written by pitfall; entries may be removed.\n\n{}",
        toml::to_string(&corpus).map_err(|e| e.to_string())?
    );
    let path = path(dir);
    std::fs::write(&path, text).map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
    Ok(added)
}

/// The corpus's seeds of this run's scenarios, as (scenario index, seed).
pub fn load(dir: &Path, scenarios: &[Scenario]) -> Result<BTreeSet<(usize, u64)>, String> {
    let corpus = read(dir)?;
    Ok(corpus
        .seed
        .iter()
        .filter_map(|e| {
            scenarios
                .iter()
                .position(|s| s.name == e.scenario)
                .map(|i| (i, e.seed))
        })
        .collect())
}
