//! `pitfall repro`: rerun one seed and print what it drew, the fault timeline
//! and every violation with the history lines that show it. Its output
//! depends only on the scenario, the seed and the build.

use crate::cli::BAD_INPUT;
use pitfall_harness::faults::render_timeline;
use pitfall_harness::history::to_jsonl;
use pitfall_harness::plan_file;
use pitfall_harness::scenario::{self, utf8_text, Scenario};
use pitfall_harness::sweep::{run_isolated, Limits};
use pitfall_harness::system::Registry;
use pitfall_sim::runner::run_seed;
use std::io::Write as _;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Scenario name or file stem (looked up in --scenarios), or path to a
    /// scenario file.
    scenario: String,
    /// The seed to rerun (any 64-bit number; `run` prints the ones worth
    /// rerunning). With --plan, the plan file's seed unless given.
    #[arg(long, required_unless_present = "plan")]
    seed: Option<u64>,
    /// Replay this plan file (from `shrink`, or `--write-plan`, maybe
    /// edited): its faults and workload sizes instead of the seed's draw.
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,
    /// Write the seed's plan (drawn, or the --plan given) here as a plan
    /// file, to edit and replay.
    #[arg(long, value_name = "FILE")]
    write_plan: Option<PathBuf>,
    /// Write the seed's history here as JSON Lines.
    #[arg(long)]
    history: Option<PathBuf>,
    /// Folder of scenario files.
    #[arg(long, default_value = "scenarios")]
    scenarios: PathBuf,
    /// Print the services' log lines at this level and above (error, warn,
    /// info, debug, trace) to stderr, stamped with simulated time and host.
    #[arg(long, value_name = "LEVEL")]
    log: Option<tracing::Level>,
}

/// The scenario with the plan file's pins, and the seed to run.
fn pin(args: &Args, scenario: Scenario) -> Result<(Scenario, u64), String> {
    let Some(path) = &args.plan else {
        return Ok((
            scenario,
            args.seed.expect("clap requires --seed without --plan"),
        ));
    };
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let text = utf8_text(path, bytes).map_err(|e| e.to_string())?;
    let (file_seed, pinned) =
        plan_file::parse(path, &text, &scenario).map_err(|e| e.to_string())?;
    let seed = args.seed.unwrap_or(file_seed);
    let scenario = scenario
        .pinned(pinned)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((scenario, seed))
}

/// `scenario NAME (system S, pitfall N), seed N`: what a repro reruns.
pub fn title(scenario: &Scenario, seed: u64) -> String {
    let pitfall = scenario
        .pitfall
        .map_or(String::new(), |p| format!(", pitfall {p}"));
    format!(
        "scenario {} (system {}{pitfall}), seed {seed}",
        scenario.name,
        scenario.system.name()
    )
}

pub fn run(args: Args, registry: &Registry) -> u8 {
    let scenario = match scenario::find(&args.scenario, &args.scenarios, registry) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return BAD_INPUT;
        }
    };
    let (scenario, seed) = match pin(&args, scenario) {
        Ok(pinned) => pinned,
        Err(e) => {
            eprintln!("error: {e}");
            return BAD_INPUT;
        }
    };
    if let Some(path) = &args.write_plan {
        let text = plan_file::to_toml(&scenario, seed, &plan_file::drawn(&scenario, seed));
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("error: {}: cannot write: {e}", path.display());
            return BAD_INPUT;
        }
    }
    // Find an unwritable --history now, not after the run.
    let history_file = match args
        .history
        .as_deref()
        .map(std::fs::File::create)
        .transpose()
    {
        Ok(f) => f,
        Err(e) => {
            let path = args.history.as_ref().expect("set").display();
            eprintln!("error: {path}: cannot write: {e}");
            return BAD_INPUT;
        }
    };
    let (config, plan) = scenario.plan(seed);
    println!("{}", title(&scenario, seed));
    let variants: Vec<String> = scenario
        .variants()
        .into_iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    println!("variants: {}", variants.join(", "));
    let names = |ks: &[String]| {
        if ks.is_empty() {
            "(none)".to_string()
        } else {
            ks.join(", ")
        }
    };
    // Faults the scenario pins on are marked: no seed turns them off.
    let enabled: Vec<String> = config
        .enabled
        .iter()
        .map(|name| {
            let pinned = scenario.faults.iter().any(|f| &f.name == name && f.always);
            if pinned {
                format!("{name} (always)")
            } else {
                name.clone()
            }
        })
        .collect();
    println!("faults on:  {}", names(&enabled));
    println!("faults off: {}", names(&config.disabled));
    println!(
        "network latency: {}–{} ms",
        config.latency_ms.0, config.latency_ms.1
    );
    println!("fault plan:");
    print!("{}", render_timeline(&plan));

    if let Some(level) = args.log {
        super::logs::to_stderr(level);
    }
    let (parts, history) = run_isolated(run_seed, &scenario, seed, Limits::default());
    if let (Some(path), Some(mut file)) = (&args.history, history_file) {
        if let Err(e) = file.write_all(to_jsonl(&history).as_bytes()) {
            eprintln!("error: {}: cannot write: {e}", path.display());
            return BAD_INPUT;
        }
        println!("history: {} ({} lines)", path.display(), history.len());
    }
    println!(
        "ran {:.3} simulated seconds, {} history lines",
        parts.sim_ms as f64 / 1000.0,
        history.len()
    );
    if let Some(failure) = &parts.failure {
        println!("SEED FAILED: {failure}");
        return 1;
    }
    super::verdicts::print(&scenario.invariants(), &history, &parts.violations)
}
