//! `pitfall merge DIR... --out DIR`: join the report folders of the shards
//! of one sweep (`run --shard I/N` on N machines) into one report, the same,
//! wall times aside, as one unsharded run of the same seeds; then keep the
//! histories it shows and render it.

use super::render;
use super::report_dir::ReportDir;
use super::run::{program_name, Mode, ReportCtx};
use crate::cli::BAD_INPUT;
use pitfall_harness::report::{Report, Repro};
use pitfall_harness::scenario::{self, Scenario};
use pitfall_harness::sweep::{SeedSummary, Shard};
use pitfall_harness::system::Registry;
use pitfall_render::shown_seeds;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// The shards' report folders.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Where the merged report goes.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args, registry: &Registry) -> u8 {
    match merge(&args, registry) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            BAD_INPUT
        }
    }
}

fn merge(args: &Args, registry: &Registry) -> Result<u8, String> {
    let reports: Vec<(PathBuf, Report)> = args
        .dirs
        .iter()
        .map(|d| render::read_report(d).map(|r| (d.clone(), r)))
        .collect::<Result<_, _>>()?;
    let first = &reports[0].1;
    for (dir, r) in &reports {
        compatible(first, &reports[0].0, r, dir)?;
    }
    let scenarios = reload_scenarios(first, registry)?;
    let finished = union(&reports)?;
    let shards: BTreeSet<&str> = reports
        .iter()
        .filter_map(|(_, r)| r.shard.as_deref())
        .collect();
    let ctx = ReportCtx {
        provenance: pitfall_harness::report::Provenance {
            command_line: std::env::args().collect(),
            ..first.provenance.clone()
        },
        repro: Repro {
            program: program_name(),
            scenarios_dir: PathBuf::from("scenarios"),
        },
        mode: if first.mode == "real" {
            Mode::Real
        } else {
            Mode::Sim
        },
        seeds: first.seeds,
        start_seed: first.start_seed,
        shard: Shard::default(),
        extra: Default::default(),
        check_determinism: first.check_determinism,
        scenarios,
    };
    let mut report = ctx.build(finished, true, None);
    for (i, s) in report.scenarios.iter_mut().enumerate() {
        s.real = reports
            .iter()
            .find_map(|(_, r)| r.scenarios[i].real.clone());
    }
    let out = ReportDir::open(&args.out)?;
    out.write(&report)?;
    copy_histories(&reports, &report, out.path())?;
    render::write_all(out.path(), &report, registry)?;
    println!(
        "merged {} report(s) (shards {}) into {}: {} of {} seed(s)",
        reports.len(),
        shards.into_iter().collect::<Vec<_>>().join(", "),
        out.report_path().display(),
        report.seeds_run,
        report.seeds_asked
    );
    Ok(if report.met { 0 } else { 1 })
}

/// Shards of one sweep: same build, mode, seed range and scenario files,
/// each complete.
fn compatible(a: &Report, a_dir: &Path, b: &Report, b_dir: &Path) -> Result<(), String> {
    let files = |r: &Report| -> Vec<(String, String)> {
        r.scenarios
            .iter()
            .map(|s| (s.name.clone(), s.file_sha256.clone()))
            .collect()
    };
    let names = |r: &Report| -> String {
        r.scenarios
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let why = if !b.complete {
        Some("it is incomplete (an interrupted run: finish it with --resume first)".to_string())
    } else if a.provenance.build != b.provenance.build {
        Some(format!(
            "it was written by build `{}`, {} by `{}`; seeds reproduce only with their build",
            b.provenance.build,
            a_dir.display(),
            a.provenance.build
        ))
    } else if files(a) != files(b) {
        Some(format!(
            "it ran another scenario set or other versions of the files ({}; {} ran {})",
            names(b),
            a_dir.display(),
            names(a)
        ))
    } else if (a.mode.as_str(), a.seeds, a.start_seed, a.check_determinism)
        != (b.mode.as_str(), b.seeds, b.start_seed, b.check_determinism)
    {
        Some(format!(
            "it ran {} mode --seeds {} --start-seed {}, {} ran {} mode --seeds {} --start-seed {}",
            b.mode,
            b.seeds,
            b.start_seed,
            a_dir.display(),
            a.mode,
            a.seeds,
            a.start_seed
        ))
    } else {
        None
    };
    match why {
        Some(why) => Err(format!(
            "{}: cannot merge: {why}",
            b_dir.join("report.json").display()
        )),
        None => Ok(()),
    }
}

/// The scenario files the shards ran, checked to be the same versions.
fn reload_scenarios(report: &Report, registry: &Registry) -> Result<Vec<Scenario>, String> {
    report
        .scenarios
        .iter()
        .map(|s| {
            let loaded =
                scenario::load_file(Path::new(&s.file), registry).map_err(|e| e.to_string())?;
            if loaded.source_sha256 != s.file_sha256 {
                return Err(format!(
                    "{}: the file changed since the shards ran it",
                    s.file
                ));
            }
            Ok(loaded)
        })
        .collect()
}

/// Every shard's finished seeds; a seed in two shards is an error.
fn union(reports: &[(PathBuf, Report)]) -> Result<Vec<SeedSummary>, String> {
    let mut seen = BTreeSet::new();
    let mut all = Vec::new();
    for (dir, r) in reports {
        for s in &r.finished {
            if !seen.insert((s.scenario, s.seed)) {
                return Err(format!(
                    "{}: seed {} of {} is in two of the reports (the same shard twice?)",
                    dir.display(),
                    s.seed,
                    r.scenarios[s.scenario].name
                ));
            }
            all.push(s.clone());
        }
    }
    Ok(all)
}

/// Copy the histories the merged report shows from the shard that ran them.
fn copy_histories(
    reports: &[(PathBuf, Report)],
    merged: &Report,
    out: &Path,
) -> Result<(), String> {
    for (index, scenario) in merged.scenarios.iter().enumerate() {
        for seed in shown_seeds(merged, index) {
            let to = render::history_path(out, &scenario.name, seed);
            let from = reports
                .iter()
                .map(|(dir, _)| render::history_path(dir, &scenario.name, seed))
                .find(|p| p.exists());
            if let Some(from) = from {
                std::fs::create_dir_all(to.parent().expect("a folder"))
                    .and_then(|()| std::fs::copy(&from, &to).map(|_| ()))
                    .map_err(|e| format!("{}: cannot copy: {e}", to.display()))?;
            }
        }
    }
    Ok(())
}
