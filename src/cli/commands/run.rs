//! `pitfall run`: sweep scenarios over seeds, print the summary table and
//! write `report.json` — at the start, as seeds finish, on an interrupt
//! (marked incomplete) and at the end — and resume an interrupted sweep.

use super::failing;
use super::real;
use super::render;
use super::report_dir::{self, ReportDir, RunShape};
use super::shrink;
use crate::cli::{BAD_INPUT, INTERRUPTED};
use indicatif::{ProgressBar, ProgressStyle};
use pitfall_harness::plan_file;
use pitfall_harness::report::{self, Provenance, Report, Repro, ScenarioReport};
use pitfall_harness::scenario::{self, Scenario};
use pitfall_harness::sweep::{self, Limits, SeedQueue, SeedSummary, Shard, SweepOptions};
use pitfall_harness::system::Registry;
use pitfall_real::sweep::RealDetails;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Scenario files or folders.
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
    /// Seeds per scenario (at most 10,000,000 per run).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=MAX_SEEDS))]
    seeds: u64,
    /// First seed; the last one run is start-seed + seeds - 1.
    #[arg(long, default_value_t = 0)]
    start_seed: u64,
    /// Seeds run in parallel (default: the number of cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    jobs: Option<u64>,
    /// Where report.json goes.
    #[arg(long, default_value = "reports")]
    report_dir: PathBuf,
    /// Run every seed twice and fail it if the two histories differ.
    #[arg(long)]
    check_determinism: bool,
    /// Wall-clock limit of one seed, in seconds (at most a day).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    seed_timeout: u64,
    /// Continue the interrupted run whose report is in --report-dir: skip
    /// the seeds it finished. Same build, scenarios and seeds only.
    #[arg(long)]
    resume: bool,
    /// Run only every N-th seed of the range, starting at the I-th (I/N,
    /// from 0/N to N-1/N), as one of N machines; `pitfall merge` joins the
    /// shards' report folders into one report.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<Shard>,
    /// Shrink the first unexpectedly violating seed of every scenario that
    /// missed its expectation (`pitfall shrink`, at most 200 runs each) and
    /// put the minimal plan in the report. Simulation only.
    #[arg(long)]
    shrink: bool,
    /// Run the seeds of --report-dir/failing-seeds.toml (every seed that
    /// failed an earlier run there) first, then the range. Simulation only.
    #[arg(long)]
    rerun_failures: bool,
    /// `sim`: the deterministic simulation. `real`: the same scenarios
    /// against a real Kafka-compatible broker, Postgres or MariaDB, and an
    /// object store.
    #[arg(long, value_enum, default_value = "sim")]
    mode: Mode,
    #[command(flatten)]
    real: RealArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Sim,
    Real,
}

/// Where the real services are (real mode only).
#[derive(clap::Args)]
pub struct RealArgs {
    /// The broker's bootstrap address.
    #[arg(long, env = "PITFALL_KAFKA", default_value = "127.0.0.1:9092")]
    kafka: String,
    /// Where pitfall's broker fault proxy listens. The broker must advertise
    /// this address, or broker faults are skipped.
    #[arg(long, env = "PITFALL_KAFKA_PROXY", default_value = "127.0.0.1:19092")]
    kafka_proxy: String,
    /// Database server URL: postgres://… (wal_level must be logical) or
    /// mysql://… for MariaDB/MySQL (binlog on, ROW format, FULL row images).
    #[arg(
        long,
        env = "PITFALL_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database: String,
    /// Object store URL: file:///folder or s3://bucket/prefix.
    #[arg(
        long,
        env = "PITFALL_OBJECT_STORE",
        default_value = "file:///tmp/pitfall-objects"
    )]
    object_store: String,
}

pub fn run(args: Args, registry: &Registry) -> u8 {
    if let Err(e) = args.check() {
        eprintln!("error: {e}");
        return BAD_INPUT;
    }
    let scenarios = match scenario::load(&args.paths, registry) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return BAD_INPUT;
        }
    };
    let dir = match ReportDir::open(&args.report_dir) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return BAD_INPUT;
        }
    };
    let mut ctx = ReportCtx {
        provenance: report_dir::provenance(),
        repro: Repro {
            program: program_name(),
            scenarios_dir: PathBuf::from("scenarios"),
        },
        mode: args.mode,
        seeds: args.seeds,
        start_seed: args.start_seed,
        shard: args.shard.unwrap_or_default(),
        extra: BTreeSet::new(),
        check_determinism: args.check_determinism,
        scenarios,
    };
    let first = match failing_first(&args, &ctx) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return BAD_INPUT;
        }
    };
    ctx.extra = first
        .iter()
        .filter(|(_, s)| !ctx.in_range(*s))
        .copied()
        .collect();
    let prior = if args.resume {
        let shape = RunShape {
            mode: ctx.mode_name(),
            seeds: args.seeds,
            start_seed: args.start_seed,
            shard: ctx.shard,
            check_determinism: args.check_determinism,
            scenarios: &ctx.scenarios,
        };
        match report_dir::finished_seeds(dir.path(), &shape) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                return BAD_INPUT;
            }
        }
    } else {
        Vec::new()
    };
    let live = Arc::new(Live::new(ctx, dir, prior, first));
    // The report exists from the start, marked incomplete: an unwritable
    // folder is found now, and a stale report is never mistaken for this one.
    if let Err(e) = live.write(false) {
        eprintln!("error: {e}");
        return BAD_INPUT;
    }
    let on_interrupt = live.clone();
    if let Err(e) = ctrlc::set_handler(move || on_interrupt.interrupted()) {
        eprintln!("warning: cannot catch interrupts ({e}); an interrupted run keeps only its last periodic report");
    }
    let mut shown = match render::ShownCandidates::new(live.dir.path(), &live.ctx.scenarios) {
        Ok(shown) => shown,
        Err(e) => {
            eprintln!("error: {e}");
            return BAD_INPUT;
        }
    };
    match sweep(&args, &live, &mut shown) {
        Ok(details) => finish(&args, &live, details.as_deref(), registry, &shown),
        Err(code) => code,
    }
}

/// The corpus's failing seeds of this run's scenarios, with
/// `--rerun-failures`.
fn failing_first(args: &Args, ctx: &ReportCtx) -> Result<BTreeSet<(usize, u64)>, String> {
    if !args.rerun_failures {
        return Ok(BTreeSet::new());
    }
    let first = failing::load(&args.report_dir, &ctx.scenarios)?;
    eprintln!(
        "rerunning {} failing seed(s) from {} first",
        first.len(),
        failing::path(&args.report_dir).display()
    );
    Ok(first)
}

/// Run the seeds not yet finished, in the chosen mode. Returns the real
/// mode's per-scenario details, or an exit code.
fn sweep(
    args: &Args,
    live: &Arc<Live>,
    shown: &mut render::ShownCandidates,
) -> Result<Option<Vec<RealDetails>>, u8> {
    let scenarios = &live.ctx.scenarios;
    let skip: Arc<BTreeSet<(usize, u64)>> = Arc::new(
        live.state()
            .results
            .iter()
            .map(|s| (s.scenario, s.seed))
            .collect(),
    );
    let shard = live.ctx.shard;
    let queue = SeedQueue::new(scenarios.len(), args.start_seed, args.seeds, skip.clone())
        .sharded(shard)
        .first(live.first.clone());
    let bar = ProgressBar::new(queue.total()).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} seeds  {elapsed_precise}  {msg}")
            .expect("valid template"),
    );
    let mut failing = 0u64;
    let mut progress = |s: &SeedSummary| {
        if s.failure.is_some() {
            failing += 1;
            bar.set_message(format!("{failing} seed(s) failed to run"));
        }
        bar.inc(1);
        live.finished(s.clone());
    };
    let details = match args.mode {
        Mode::Sim => {
            let jobs = args
                .jobs
                .map(|j| j as usize)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let opts = SweepOptions {
                seeds: args.seeds,
                start_seed: args.start_seed,
                jobs,
                check_determinism: args.check_determinism,
                limits: Limits {
                    wall: Duration::from_secs(args.seed_timeout),
                },
                skip,
                shard,
                first: live.first.clone(),
            };
            crate::allocator::return_freed_memory();
            // The histories the report may show are kept as their seeds
            // finish, so they need not run again at the end.
            sweep::run_keeping(
                pitfall_sim::runner::run_seed,
                scenarios,
                &opts,
                |summary, history| {
                    progress(summary);
                    if let Err(e) = shown.offer(summary, &history) {
                        eprintln!("warning: {e}");
                    }
                },
            );
            None
        }
        Mode::Real => Some(real::run(args, scenarios, skip, shard, &mut progress)?),
    };
    bar.finish_and_clear();
    Ok(details)
}

/// Write the complete report, print the table and say whether every
/// scenario met its expectation.
fn finish(
    args: &Args,
    live: &Live,
    details: Option<&[RealDetails]>,
    registry: &Registry,
    shown: &render::ShownCandidates,
) -> u8 {
    let mut report = live.report(true, details);
    if args.shrink {
        shrink_failures(&mut report, &live.ctx.scenarios, live.dir.path(), args.jobs);
    }
    if let Err(e) = live.dir.write(&report) {
        eprintln!("error: {e}");
        return BAD_INPUT;
    }
    let dir = live.dir.path();
    let rendered = match live.ctx.mode {
        Mode::Sim => render::keep_sim_histories(dir, &report, &live.ctx.scenarios, shown),
        Mode::Real => Ok(()),
    }
    .and_then(|()| render::write_all(dir, &report, registry));
    if let Err(e) = rendered {
        eprintln!("error: {e}");
        return BAD_INPUT;
    }
    if live.ctx.mode == Mode::Sim {
        match failing::record(dir, &report) {
            Ok(0) => {}
            Ok(n) => println!(
                "{n} new failing seed(s) in {}: rerun them first with --rerun-failures",
                failing::path(dir).display()
            ),
            Err(e) => eprintln!("warning: {e}"),
        }
    }
    print!("{}", report::render_table(&report));
    let sim: f64 = report.scenarios.iter().map(|s| s.simulated_seconds).sum();
    println!(
        "{} scenario(s) × {} seed(s){}: {:.0} simulated seconds",
        report.scenarios.len(),
        report.seeds,
        if report.check_determinism {
            ", each run twice"
        } else {
            ""
        },
        sim
    );
    println!(
        "report: {} (and report.html, report.md, junit.xml)",
        live.dir.report_path().display()
    );
    if report.met {
        println!("every scenario met its expectation");
        0
    } else {
        println!("some scenarios did not meet their expectation");
        1
    }
}

/// `--shrink`: for each scenario that missed its expectation, shrink its
/// first seed with an unexpected violation and note the minimal plan.
fn shrink_failures(report: &mut Report, scenarios: &[Scenario], dir: &Path, jobs: Option<u64>) {
    for (i, scenario) in scenarios.iter().enumerate() {
        let s = &report.scenarios[i];
        if s.met {
            continue;
        }
        let Some((seed, invariant)) =
            report
                .finished
                .iter()
                .filter(|f| f.scenario == i)
                .find_map(|f| {
                    f.violated
                        .iter()
                        .find(|v| s.is_unexpected(v))
                        .map(|v| (f.seed, v.clone()))
                })
        else {
            continue;
        };
        let plan = dir
            .join("shrink")
            .join(format!("{}-seed-{seed}.toml", scenario.name));
        let jobs = shrink::default_jobs(jobs);
        match shrink::shrink_seed(scenario, seed, Some(&invariant), 200, jobs) {
            Ok(outcome) => {
                let text = plan_file::to_toml(scenario, seed, &outcome.after);
                let written = std::fs::create_dir_all(plan.parent().expect("a folder"))
                    .and_then(|()| std::fs::write(&plan, text));
                if let Err(e) = written {
                    eprintln!("warning: {}: cannot write: {e}", plan.display());
                    continue;
                }
                let summary = outcome.summary(seed, &plan, scenario);
                println!(
                    "shrunk {} seed {seed} ({invariant}): {} → {} window(s), {} → {} order(s); {}",
                    scenario.name,
                    summary.windows.0,
                    summary.windows.1,
                    summary.orders.0,
                    summary.orders.1,
                    summary.repro
                );
                report.scenarios[i].shrunk = Some(summary);
            }
            Err((_, why)) => eprintln!(
                "warning: cannot shrink {} seed {seed}: {why}",
                scenario.name
            ),
        }
    }
}

/// The program as the user invoked it (`pitfall`, or a system's own
/// binary), for repro commands.
pub(super) fn program_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "pitfall".into())
}

/// Everything a report is built from, besides the seeds' outcomes.
pub(super) struct ReportCtx {
    pub provenance: Provenance,
    pub repro: Repro,
    pub mode: Mode,
    pub seeds: u64,
    pub start_seed: u64,
    pub shard: Shard,
    /// Seeds run besides the range (`--rerun-failures`), by scenario.
    pub extra: BTreeSet<(usize, u64)>,
    pub check_determinism: bool,
    pub scenarios: Vec<Scenario>,
}

impl ReportCtx {
    /// Whether a seed is in this run's range and shard.
    fn in_range(&self, seed: u64) -> bool {
        self.shard.has_seed(self.start_seed, self.seeds, seed)
    }

    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            Mode::Sim => "sim",
            Mode::Real => "real",
        }
    }

    /// The report of the `finished` seeds, which it keeps (sorted).
    pub fn build(
        &self,
        mut finished: Vec<SeedSummary>,
        complete: bool,
        details: Option<&[RealDetails]>,
    ) -> Report {
        finished.sort_by_key(|s| (s.scenario, s.seed));
        let scenarios: Vec<ScenarioReport> = self
            .scenarios
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mine: Vec<_> = finished.iter().filter(|r| r.scenario == i).collect();
                let sometimes = match self.mode {
                    Mode::Sim => report::Sometimes::Judged,
                    Mode::Real => report::Sometimes::Reported,
                };
                let mut r = report::scenario_report(
                    s,
                    self.start_seed,
                    self.seeds,
                    &mine,
                    &self.repro,
                    sometimes,
                );
                r.real = details
                    .and_then(|d| d.get(i))
                    .map(|d| serde_json::to_value(d).expect("details serialize"));
                r
            })
            .collect();
        Report {
            complete,
            provenance: self.provenance.clone(),
            mode: self.mode_name().into(),
            reproducibility: match self.mode {
                Mode::Sim => {
                    "a seed reproduces the whole run, byte for byte, with the same build".into()
                }
                Mode::Real => {
                    "a seed reproduces the fault plan and the workload, not the timing".into()
                }
            },
            seeds: self.seeds,
            start_seed: self.start_seed,
            check_determinism: self.check_determinism,
            shard: (!self.shard.is_whole()).then(|| self.shard.to_string()),
            seeds_asked: self.shard.len(self.seeds) * self.scenarios.len() as u64
                + self.extra.len() as u64,
            seeds_run: finished.len() as u64,
            met: complete && scenarios.iter().all(|r| r.met),
            scenarios,
            finished,
        }
    }
}

/// A run in progress: its finished seeds, and the report rewritten from
/// them as they come (at most once a second) and when interrupted.
struct Live {
    ctx: ReportCtx,
    dir: ReportDir,
    /// Known failing seeds run first.
    first: Arc<BTreeSet<(usize, u64)>>,
    state: Mutex<LiveState>,
}

struct LiveState {
    results: Vec<SeedSummary>,
    last_write: Option<std::time::Instant>,
}

/// How often a running sweep rewrites its incomplete report.
const REPORT_EVERY: Duration = Duration::from_secs(1);

impl Live {
    fn new(
        ctx: ReportCtx,
        dir: ReportDir,
        prior: Vec<SeedSummary>,
        first: BTreeSet<(usize, u64)>,
    ) -> Self {
        Live {
            ctx,
            dir,
            first: Arc::new(first),
            state: Mutex::new(LiveState {
                results: prior,
                last_write: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LiveState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn report(&self, complete: bool, details: Option<&[RealDetails]>) -> Report {
        self.ctx
            .build(self.state().results.clone(), complete, details)
    }

    fn write(&self, complete: bool) -> Result<(), String> {
        self.write_from(&mut self.state(), complete)
    }

    /// Write the report of the seeds finished so far. They are moved into
    /// the report and back, not copied: a sweep rewrites its report every
    /// second, and copying thousands of seed summaries each time grew the
    /// main thread's heap by about as much as they take.
    fn write_from(&self, state: &mut LiveState, complete: bool) -> Result<(), String> {
        let report = self
            .ctx
            .build(std::mem::take(&mut state.results), complete, None);
        let written = self.dir.write(&report);
        state.results = report.finished;
        written
    }

    /// A seed finished: keep it, and rewrite the incomplete report if the
    /// last write is older than [`REPORT_EVERY`].
    #[allow(clippy::disallowed_methods)] // when to rewrite the report is a wall-clock matter, outside any simulation
    fn finished(&self, summary: SeedSummary) {
        let mut state = self.state();
        state.results.push(summary);
        let now = std::time::Instant::now();
        if state
            .last_write
            .is_some_and(|t| now.duration_since(t) < REPORT_EVERY)
        {
            return;
        }
        state.last_write = Some(now);
        if let Err(e) = self.write_from(&mut state, false) {
            eprintln!("warning: {e}");
        }
    }

    /// SIGINT or SIGTERM: write what finished, marked incomplete, and exit.
    fn interrupted(&self) {
        let mut state = self.state();
        let report = self
            .ctx
            .build(std::mem::take(&mut state.results), false, None);
        let path = self.dir.report_path();
        match self.dir.write(&report) {
            Ok(()) => eprintln!(
                "\ninterrupted: {} of {} seed(s) finished; {} is marked incomplete. Rerun the same command with --resume to run the rest.",
                report.seeds_run,
                report.seeds_asked,
                path.display()
            ),
            Err(e) => eprintln!("\ninterrupted, and {e}"),
        }
        // Histories kept for the report's end, which will not come.
        let _ = std::fs::remove_dir_all(render::ShownCandidates::staging(self.dir.path()));
        std::process::exit(INTERRUPTED.into());
    }
}

fn parse_shard(text: &str) -> Result<Shard, String> {
    text.parse()
}

/// The most seeds one run takes per scenario: every finished seed's
/// outcome is kept in memory and in the report.
const MAX_SEEDS: u64 = 10_000_000;

impl Args {
    /// What clap cannot check alone: the seed range fits in 64 bits.
    fn check(&self) -> Result<(), String> {
        if self.start_seed.checked_add(self.seeds - 1).is_none() {
            return Err(format!(
                "--start-seed {} with --seeds {} runs past the last seed, {}",
                self.start_seed,
                self.seeds,
                u64::MAX
            ));
        }
        if self.mode == Mode::Real {
            let sim_only = [
                (self.check_determinism, "--check-determinism"),
                (self.rerun_failures, "--rerun-failures"),
                (self.shrink, "--shrink"),
            ];
            if let Some((_, flag)) = sim_only.iter().find(|(on, _)| *on) {
                return Err(format!(
                    "{flag} needs the simulation: a real-mode seed does not reproduce its timing"
                ));
            }
        }
        Ok(())
    }

    pub fn real_targets(&self) -> pitfall_real::runner::Targets {
        pitfall_real::runner::Targets {
            kafka: self.real.kafka.clone(),
            kafka_proxy: self.real.kafka_proxy.clone(),
            database: self.real.database.clone(),
            object_store: self.real.object_store.clone(),
        }
    }

    pub fn seeds(&self) -> (u64, u64) {
        (self.start_seed, self.seeds)
    }

    pub fn report_dir(&self) -> &std::path::Path {
        &self.report_dir
    }
}
