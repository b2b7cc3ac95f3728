//! Printing verdicts: every invariant, and each violation with the history
//! lines that show it. Shared by `repro` and `check`.

use pitfall_harness::checkers::{Invariant, Violation};
use pitfall_harness::history::Entry;

/// Evidence lines printed per violation.
const EVIDENCE: usize = 12;

/// Print the verdicts; returns 1 when anything is violated, else 0.
pub fn print(invariants: &[Invariant], history: &[Entry], violations: &[Violation]) -> u8 {
    print_with(invariants, |i| entry_line(&history[i]), violations)
}

/// An entry as its history line.
pub fn entry_line(entry: &Entry) -> String {
    serde_json::to_string(entry).expect("entries serialize")
}

/// [`print`], with `line(i)` giving entry `i`'s history line.
pub fn print_with(
    invariants: &[Invariant],
    line: impl Fn(usize) -> String,
    violations: &[Violation],
) -> u8 {
    let mut verdict = 0;
    for inv in invariants {
        let found: Vec<_> = violations
            .iter()
            .filter(|v| v.invariant == inv.name)
            .collect();
        if found.is_empty() {
            println!("{:<22} holds", inv.name);
            continue;
        }
        verdict = 1;
        println!("{:<22} VIOLATED ({} violation(s))", inv.name, found.len());
        for v in found {
            println!("  - {}", v.message);
            for &i in v.events.iter().take(EVIDENCE) {
                println!("      #{:<6} {}", i + 1, line(i));
            }
            if v.events.len() > EVIDENCE {
                println!("      … {} more line(s)", v.events.len() - EVIDENCE);
            }
        }
    }
    verdict
}
