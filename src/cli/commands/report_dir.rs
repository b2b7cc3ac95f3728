//! The report folder of one `pitfall run`: one run at a time (an advisory
//! lock on `report.lock`), `report.json` replaced atomically (a temporary
//! file, then a rename) so a reader never sees half of one, what made the
//! report (its [`Provenance`]), and reading an interrupted report back for
//! `--resume`.

use pitfall_harness::report::{Provenance, Report};
use pitfall_harness::scenario::Scenario;
use pitfall_harness::sweep::{SeedSummary, Shard};
use serde::Deserialize;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

/// A report folder this process holds the lock of (until it exits).
pub struct ReportDir {
    dir: PathBuf,
    _lock: File,
}

impl ReportDir {
    /// Create the folder if needed and take its lock. Fails, with a message
    /// for the user, when the folder cannot be created or written, or when
    /// another run holds it.
    pub fn open(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
        let lock_path = dir.join("report.lock");
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| format!("{}: cannot write: {e}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            let mut holder = String::new();
            let _ = lock.read_to_string(&mut holder);
            return Err(format!(
                "{}: another pitfall run (pid {}) is writing its report here; wait for it or choose another --report-dir",
                dir.display(),
                holder.trim()
            ));
        }
        let pid = std::process::id().to_string();
        lock.set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| lock.write_all(pid.as_bytes()))
            .map_err(|e| format!("{}: cannot write: {e}", lock_path.display()))?;
        Ok(ReportDir {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn report_path(&self) -> PathBuf {
        self.dir.join("report.json")
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Replace `report.json` with `report`, atomically.
    pub fn write(&self, report: &Report) -> Result<(), String> {
        let path = self.report_path();
        let tmp = self
            .dir
            .join(format!(".report.json.{}.tmp", std::process::id()));
        // Written as it is serialized: a report of thousands of seeds is
        // megabytes of text, which need not be in memory at once.
        File::create(&tmp)
            .map(std::io::BufWriter::new)
            .and_then(|mut out| {
                serde_json::to_writer_pretty(&mut out, report)?;
                out.write_all(b"\n")?;
                out.flush()
            })
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("{}: cannot write: {e}", path.display()))
    }
}

/// What this binary is and how it was started, for the report.
pub fn provenance() -> Provenance {
    Provenance {
        pitfall_version: env!("CARGO_PKG_VERSION").to_string(),
        build: build(),
        started_at: now_rfc3339(),
        command_line: std::env::args().collect(),
    }
}

/// The git commit and cargo profile this binary was built from.
pub fn build() -> String {
    format!(
        "{} {}",
        env!("PITFALL_GIT_COMMIT"),
        env!("PITFALL_BUILD_PROFILE")
    )
}

#[allow(clippy::disallowed_types, clippy::disallowed_methods)] // the report's start time, outside any simulation
fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// The part of a report that must match for `--resume` to continue it.
#[derive(Deserialize)]
struct Resumable {
    complete: bool,
    build: String,
    mode: String,
    seeds: u64,
    start_seed: u64,
    #[serde(default)]
    shard: Option<String>,
    check_determinism: bool,
    scenarios: Vec<ResumableScenario>,
    finished: Vec<SeedSummary>,
}

#[derive(Deserialize)]
struct ResumableScenario {
    name: String,
    file_sha256: String,
}

/// What a resumed run must agree on with the report it continues.
pub struct RunShape<'a> {
    pub mode: &'a str,
    pub seeds: u64,
    pub start_seed: u64,
    pub shard: Shard,
    pub check_determinism: bool,
    pub scenarios: &'a [Scenario],
}

/// The finished seeds of the report in `dir`, if it was written by this
/// build for the same scenarios and seeds; else why it cannot be resumed.
pub fn finished_seeds(dir: &Path, shape: &RunShape<'_>) -> Result<Vec<SeedSummary>, String> {
    let path = dir.join("report.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: nothing to resume: {e}", path.display()))?;
    let old: Resumable = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}:{}:{}: not a report this pitfall can resume: {e}",
            path.display(),
            e.line(),
            e.column()
        )
    })?;
    let here = build();
    let names = |list: Vec<(String, String)>| {
        list.into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let theirs: Vec<(String, String)> = old
        .scenarios
        .into_iter()
        .map(|s| (s.name, s.file_sha256))
        .collect();
    let mine: Vec<(String, String)> = shape
        .scenarios
        .iter()
        .map(|s| (s.name.clone(), s.source_sha256.clone()))
        .collect();
    let mismatch = if old.build != here {
        Some(format!(
            "it was written by build `{}` and this is `{here}`; a seed reproduces only with its build",
            old.build
        ))
    } else if old.mode != shape.mode {
        Some(format!("it ran in {} mode, not {}", old.mode, shape.mode))
    } else if (old.seeds, old.start_seed) != (shape.seeds, shape.start_seed) {
        Some(format!(
            "it ran --seeds {} --start-seed {}, not --seeds {} --start-seed {}",
            old.seeds, old.start_seed, shape.seeds, shape.start_seed
        ))
    } else if old.shard.unwrap_or_else(|| "0/1".into()) != shape.shard.to_string() {
        Some(format!("it ran another shard than {}", shape.shard))
    } else if old.check_determinism != shape.check_determinism {
        Some("it differs in --check-determinism".to_string())
    } else if theirs != mine {
        Some(format!(
            "it ran other scenarios or other versions of their files ({}; now {})",
            names(theirs),
            names(mine)
        ))
    } else {
        None
    };
    if let Some(why) = mismatch {
        return Err(format!("{}: cannot resume: {why}", path.display()));
    }
    if old.complete {
        eprintln!(
            "note: {} is already complete; nothing to rerun",
            path.display()
        );
    }
    Ok(old.finished)
}
