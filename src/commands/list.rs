//! `pitfall list`: what the suite contains and what it checks.

use crate::BAD_INPUT;
use pitfall_sim::checkers::Invariant;
use pitfall_sim::faults::FaultKind;
use pitfall_sim::scenario::{self, Expect};
use pitfall_system::variants::{Idempotency, Publish};
use std::path::Path;

pub fn run(dir: &Path) -> u8 {
    let scenarios = match scenario::load(&[dir.to_path_buf()]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return BAD_INPUT;
        }
    };
    println!("SCENARIOS ({})", dir.display());
    let width = scenarios.iter().map(|s| s.name.len()).max().unwrap_or(8);
    for s in &scenarios {
        let expect = match &s.expect {
            Expect::Holds => "holds".to_string(),
            Expect::Violated(l) => format!(
                "violates {}",
                l.iter().map(|i| i.name()).collect::<Vec<_>>().join(", ")
            ),
        };
        println!(
            "  {:<width$}  pitfall {}  {} + {}  → {expect}",
            s.name,
            s.pitfall,
            s.variants.producer.name(),
            s.variants.consumer.name()
        );
        println!("  {:<width$}  {}", "", s.description);
    }
    println!("\nINVARIANTS");
    for i in Invariant::ALL {
        println!("  {:<20} {}", i.name(), i.describe());
    }
    println!("\nVARIANTS");
    println!("  pitfall 1 — producer (how payments gets its event out):");
    for p in Publish::ALL {
        println!("    {:<20} {}", p.name(), p.describe());
    }
    println!("  pitfall 5 — consumer (how inventory applies an event):");
    for c in Idempotency::ALL {
        println!("    {:<20} {}", c.name(), c.describe());
    }
    println!("\nFAULT KINDS");
    for k in FaultKind::ALL {
        println!("  {:<20} {}", k.name(), k.describe());
    }
    0
}
