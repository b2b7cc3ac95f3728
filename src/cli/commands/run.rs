//! `pitfall run`: sweep scenarios over seeds, print the summary table and
//! write `report.json`.

use super::real;
use crate::cli::BAD_INPUT;
use indicatif::{ProgressBar, ProgressStyle};
use pitfall_harness::report::{self, Report};
use pitfall_harness::scenario;
use pitfall_harness::sweep::{self, Limits, SeedSummary, SweepOptions};
use pitfall_harness::system::Registry;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Scenario files or folders.
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
    /// Seeds per scenario.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    /// First seed.
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
    /// Wall-clock limit of one seed, in seconds.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    seed_timeout: u64,
    /// `sim`: the deterministic simulation. `real`: the same scenarios
    /// against a real Kafka-compatible broker, Postgres and object store.
    #[arg(long, value_enum, default_value = "sim")]
    mode: Mode,
    #[command(flatten)]
    real: RealArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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
    /// Postgres connection URL (wal_level must be logical).
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
    let scenarios = match scenario::load(&args.paths, registry) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return BAD_INPUT;
        }
    };
    let total = scenarios.len() as u64 * args.seeds;
    let bar = ProgressBar::new(total).with_style(
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
    };
    let (results, details) = match args.mode {
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
            };
            let seed_fn = pitfall_sim::runner::run_seed;
            (sweep::run(seed_fn, &scenarios, &opts, &mut progress), None)
        }
        Mode::Real => {
            if args.check_determinism {
                eprintln!("error: --check-determinism needs the simulation; real mode reproduces the fault plan and the workload, not the timing");
                return BAD_INPUT;
            }
            match real::run(&args, &scenarios, &mut progress) {
                Ok((results, details)) => (results, Some(details)),
                Err(code) => return code,
            }
        }
    };
    bar.finish_and_clear();

    let reports: Vec<_> = scenarios
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mine: Vec<_> = results.iter().filter(|r| r.scenario == i).collect();
            let mut r = report::scenario_report(s, args.start_seed, &mine);
            r.real = details
                .as_ref()
                .map(|d| serde_json::to_value(&d[i]).expect("details serialize"));
            r
        })
        .collect();
    let report = Report {
        mode: match args.mode {
            Mode::Sim => "sim".into(),
            Mode::Real => "real".into(),
        },
        reproducibility: match args.mode {
            Mode::Sim => "a seed reproduces the whole run, byte for byte".into(),
            Mode::Real => {
                "a seed reproduces the fault plan and the workload, not the timing".into()
            }
        },
        seeds: args.seeds,
        start_seed: args.start_seed,
        check_determinism: args.check_determinism,
        met: reports.iter().all(|r| r.met),
        scenarios: reports,
    };
    print!("{}", report::render_table(&report));
    let sim: f64 = report.scenarios.iter().map(|s| s.simulated_seconds).sum();
    println!(
        "{} scenario(s) × {} seed(s){}: {:.0} simulated seconds",
        report.scenarios.len(),
        args.seeds,
        if args.check_determinism {
            ", each run twice"
        } else {
            ""
        },
        sim
    );
    if let Err(e) = std::fs::create_dir_all(&args.report_dir) {
        eprintln!("error: cannot create {}: {e}", args.report_dir.display());
        return BAD_INPUT;
    }
    let path = args.report_dir.join("report.json");
    let json = serde_json::to_string_pretty(&report).expect("the report serializes");
    if let Err(e) = std::fs::write(&path, json + "\n") {
        eprintln!("error: cannot write {}: {e}", path.display());
        return BAD_INPUT;
    }
    println!("report: {}", path.display());
    if report.met {
        println!("every scenario met its expectation");
        0
    } else {
        println!("some scenarios did not meet their expectation");
        1
    }
}

impl Args {
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
