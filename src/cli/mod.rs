//! `pitfall`'s command line, for any set of systems: run, repro, trace,
//! check and list. A crate that describes its own system gets the whole
//! command line by calling [`main`] from its own `main` with its systems
//! registered. Subcommands live in [`commands`]; this module only parses
//! arguments and maps outcomes to exit codes (0 met / clean, 1 a violation
//! or unmet expectation, 2 bad input).

mod commands;

use clap::{Parser, Subcommand};
use pitfall_harness::system::{Registry, System};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "pitfall",
    version,
    about = "Deterministic simulation and chaos testing of event-driven systems"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenario suites across many seeds and check every invariant.
    #[command(after_help = RUN_EXIT_CODES)]
    Run(commands::run::Args),
    /// Rerun one seed and show its faults, violations and evidence.
    Repro(commands::repro::Args),
    /// Search a violating seed for the smallest plan that still violates the
    /// same invariant, and write it as a plan file for `repro --plan`.
    Shrink(commands::shrink::Args),
    /// Run the checkers on a recorded history from either mode.
    Check(commands::check::Args),
    /// Render report.html, report.md and junit.xml again from a report
    /// folder (either mode), without rerunning anything.
    Report(commands::render::Args),
    /// Merge the report folders of `run --shard I/N` runs into one report.
    Merge(commands::merge::Args),
    /// Follow one request through a seed: operations, commits, records,
    /// effects and log lines, in simulated-time order.
    Trace(commands::trace::Args),
    /// List the systems, and for each its scenarios, variants, fault kinds
    /// and invariants.
    List {
        /// Folder of scenario files.
        #[arg(long, default_value = "scenarios")]
        scenarios: PathBuf,
    },
}

/// Exit code for bad input.
pub const BAD_INPUT: u8 = 2;
/// Exit code of a run stopped by SIGINT or SIGTERM (128 + SIGINT, as shells
/// report it).
pub const INTERRUPTED: u8 = 130;

const RUN_EXIT_CODES: &str = "Exit codes:
  0    every scenario met its expectation over every seed asked
  1    some scenario did not (an unexpected violation, an expected one never
       seen, or a seed that failed to run)
  2    bad input: a scenario file, a flag, an unusable report folder or services
  130  interrupted: report.json keeps the finished seeds, marked
       \"complete\": false; rerun with --resume to finish";

/// The command line, over `systems` (the first is the default for scenario
/// files that name none).
pub fn main(systems: Vec<Arc<dyn System>>) -> ExitCode {
    // Die quietly when stdout is a closed pipe (`pitfall list | head`), as
    // Unix tools do, instead of panicking inside println!.
    // SAFETY: restoring the default disposition of SIGPIPE before any other
    // thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let registry = match Registry::new(systems) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(BAD_INPUT);
        }
    };
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(args) => commands::run::run(args, &registry),
        Command::Repro(args) => commands::repro::run(args, &registry),
        Command::Check(args) => commands::check::run(args, &registry),
        Command::Shrink(args) => commands::shrink::run(args, &registry),
        Command::Report(args) => commands::render::run(args, &registry),
        Command::Merge(args) => commands::merge::run(args, &registry),
        Command::Trace(args) => commands::trace::run(args, &registry),
        Command::List { scenarios } => commands::list::run(&scenarios, &registry),
    };
    ExitCode::from(code)
}
