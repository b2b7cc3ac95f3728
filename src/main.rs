//! `pitfall`: the command line of the deterministic simulation and
//! chaos-testing harness. Subcommands live in [`commands`]; this file only
//! parses arguments and maps outcomes to exit codes (0 met / clean, 1 a
//! violation or unmet expectation, 2 bad input).

mod commands;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

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
    Run(commands::run::Args),
    /// Rerun one seed and show its faults, violations and evidence.
    Repro(commands::repro::Args),
    /// Run the checkers on a recorded history from either mode.
    Check(commands::check::Args),
    /// Follow one request through a seed: operations, commits, records,
    /// effects and log lines, in simulated-time order.
    Trace(commands::trace::Args),
    /// List the scenarios, variants, fault kinds and invariants.
    List {
        /// Folder of scenario files.
        #[arg(long, default_value = "scenarios")]
        scenarios: PathBuf,
    },
}

/// Exit code for bad input.
pub const BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    // Die quietly when stdout is a closed pipe (`pitfall list | head`), as
    // Unix tools do, instead of panicking inside println!.
    // SAFETY: restoring the default disposition of SIGPIPE before any other
    // thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(args) => commands::run::run(args),
        Command::Repro(args) => commands::repro::run(args),
        Command::Check(args) => commands::check::run(args),
        Command::Trace(args) => commands::trace::run(args),
        Command::List { scenarios } => commands::list::run(&scenarios),
    };
    ExitCode::from(code)
}
