//! `pitfall check`: check a recorded history's shape (one run header, time
//! order, unique positions; a corrupt file is bad input, not a system bug),
//! then run the checkers on it and print the verdicts.

use super::verdicts;
use crate::cli::BAD_INPUT;
use pitfall_harness::checkers::{self, check_all_compact, Violation};
use pitfall_harness::history::compact::{Arena, Compact, Ev};
use pitfall_harness::history::file;
use pitfall_harness::scenario::{self, Expect, Scenario};
use pitfall_harness::system::Registry;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// A history in JSON Lines, as `run` (real mode) or `repro --history` wrote it.
    history: PathBuf,
    /// Also judge the verdicts against this scenario's expectation: the exit
    /// code is then 1 only for a violation the scenario does not expect.
    #[arg(long)]
    scenario: Option<String>,
    /// Folder of scenario files.
    #[arg(long, default_value = "scenarios")]
    scenarios: PathBuf,
}

pub fn run(args: Args, registry: &Registry) -> u8 {
    let name = args.history.display().to_string();
    let bytes = match file::read(&args.history) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {name}: cannot read: {e}");
            return BAD_INPUT;
        }
    };
    let text = match scenario::utf8_str(&args.history, &bytes) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return BAD_INPUT;
        }
    };
    let arena = Arena::new();
    let history = match Compact::parse_history(text, &name, &arena) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return BAD_INPUT;
        }
    };
    let Some(Ev::Run {
        scenario,
        seed,
        mode,
        system,
        ..
    }) = history.lines().first().map(|e| e.event)
    else {
        unreachable!("parse_history checked the run header");
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
    let judged = match &args.scenario {
        None => None,
        Some(wanted) => match scenario::find(wanted, Path::new(&args.scenarios), registry) {
            Ok(s) => {
                if s.name != scenario {
                    eprintln!(
                        "warning: the history was recorded for {scenario}, not {}",
                        s.name
                    );
                }
                Some(s)
            }
            Err(e) => {
                eprintln!("error: {e}");
                return BAD_INPUT;
            }
        },
    };
    let invariants = checkers::all(system);
    let violations = check_all_compact(&invariants, &history);
    let line = |i| verdicts::entry_line(&history.entry(i));
    let code = verdicts::print_with(&invariants, line, &violations);
    let code = match judged {
        None => code,
        Some(s) => judge(&s, &violations),
    };
    // The process ends with this command, and the history's memory with
    // it: dropping its lines and the checkers' shared maps one by one first
    // was about 2% of checking a million-line history.
    std::mem::forget(history);
    code
}

/// With `--scenario`, the exit code says whether this history is what the
/// scenario expects: 1 only for a violation it neither expects nor
/// tolerates. (A `violated` scenario needs the violation in *some* seed, so
/// one history without it is no failure.)
fn judge(scenario: &Scenario, violations: &[Violation]) -> u8 {
    let listed = |inv: &str, list: &[String]| list.iter().any(|e| e == inv);
    let expected = scenario.expect.expected();
    let shown: BTreeSet<&str> = violations
        .iter()
        .map(|v| v.invariant.as_str())
        .filter(|i| listed(i, expected))
        .collect();
    let unexpected: BTreeSet<&str> = violations
        .iter()
        .map(|v| v.invariant.as_str())
        .filter(|i| !listed(i, expected) && !listed(i, &scenario.tolerate))
        .collect();
    match &scenario.expect {
        Expect::Holds => {}
        Expect::Violated(list) => println!(
            "expectation violates {}: this history shows {}",
            list.join(", "),
            if shown.is_empty() {
                "none of them (another seed may)".to_string()
            } else {
                shown.into_iter().collect::<Vec<_>>().join(", ")
            }
        ),
    }
    if unexpected.is_empty() {
        println!("expectation {}: met by this history", scenario.expect);
        0
    } else {
        println!(
            "expectation {}: NOT met by this history: {} violated",
            scenario.expect,
            unexpected.into_iter().collect::<Vec<_>>().join(", ")
        );
        1
    }
}
