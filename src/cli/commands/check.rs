//! `pitfall check`: run the checkers on a recorded history (from either
//! mode) and print the verdicts.

use super::verdicts;
use crate::cli::BAD_INPUT;
use pitfall_harness::checkers::{self, check_all};
use pitfall_harness::history::{parse_jsonl, Event};
use pitfall_harness::scenario::{self, Expect};
use pitfall_harness::system::Registry;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// A history in JSON Lines, as `run` (real mode) or `repro --history` wrote it.
    history: PathBuf,
    /// Also judge the verdicts against this scenario's expectation.
    #[arg(long)]
    scenario: Option<String>,
    /// Folder of scenario files.
    #[arg(long, default_value = "scenarios")]
    scenarios: PathBuf,
}

pub fn run(args: Args, registry: &Registry) -> u8 {
    let text = match std::fs::read_to_string(&args.history) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: cannot read: {e}", args.history.display());
            return BAD_INPUT;
        }
    };
    let name = args.history.display().to_string();
    let history = match parse_jsonl(&text, &name) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return BAD_INPUT;
        }
    };
    let Some(Event::Run {
        scenario,
        seed,
        mode,
        system,
        ..
    }) = history.first().map(|e| &e.event)
    else {
        eprintln!("error: {name}:1: a history starts with its run header");
        return BAD_INPUT;
    };
    let system = if system.is_empty() {
        registry.default_system()
    } else {
        match registry.get(system) {
            Some(s) => s,
            None => {
                eprintln!(
                    "error: {name}:1: the history is of system `{system}`, which this command line does not know (it knows {})",
                    registry.names().join(", ")
                );
                return BAD_INPUT;
            }
        }
    };
    println!(
        "history of scenario {scenario}, seed {seed}, {mode} mode: {} lines",
        history.len()
    );
    let expect = match &args.scenario {
        None => None,
        Some(wanted) => match scenario::find(wanted, Path::new(&args.scenarios), registry) {
            Ok(s) => {
                if s.name != *scenario {
                    eprintln!(
                        "warning: the history was recorded for {scenario}, not {}",
                        s.name
                    );
                }
                Some(s.expect)
            }
            Err(e) => {
                eprintln!("error: {e}");
                return BAD_INPUT;
            }
        },
    };
    let invariants = checkers::all(system);
    let violations = check_all(&invariants, &history);
    let code = verdicts::print(&invariants, &history, &violations);
    if let Some(expect) = expect {
        let violated: Vec<&str> = violations.iter().map(|v| v.invariant.as_str()).collect();
        match expect {
            Expect::Holds => println!(
                "expectation holds: {}",
                if violated.is_empty() {
                    "met by this history"
                } else {
                    "NOT met by this history"
                }
            ),
            Expect::Violated(list) => {
                let shown: Vec<&str> = list
                    .iter()
                    .map(String::as_str)
                    .filter(|i| violated.contains(i))
                    .collect();
                println!(
                    "expectation violates {}: this history shows {}",
                    list.join(", "),
                    if shown.is_empty() {
                        "none of them".to_string()
                    } else {
                        shown.join(", ")
                    }
                );
            }
        }
    }
    code
}
