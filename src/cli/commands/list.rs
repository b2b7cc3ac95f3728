//! `pitfall list`: the systems the command line knows and, for each, its
//! scenarios, variants, invariants and faults.

use crate::cli::BAD_INPUT;
use pitfall_harness::checkers;
use pitfall_harness::faults::FaultKind;
use pitfall_harness::scenario::{self, Scenario};
use pitfall_harness::system::{Registry, System};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub fn run(dir: &Path, registry: &Registry) -> u8 {
    let scenarios = match scenario::load(&[dir.to_path_buf()], registry) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return BAD_INPUT;
        }
    };
    println!("SYSTEMS");
    for system in registry.systems() {
        println!("  {:<10} {}", system.name(), system.describe());
    }
    for system in registry.systems() {
        let mine: Vec<&Scenario> = scenarios
            .iter()
            .filter(|s| Arc::ptr_eq(&s.system, system))
            .collect();
        print_system(system, &mine, dir);
    }
    println!("\nFAULT KINDS (every system)");
    for k in FaultKind::ALL {
        println!("  {:<20} {}", k.name(), k.describe());
    }
    println!("  {:<20} crash one service host by name", "crash:<host>");
    println!("\nCOVERAGE EVENTS (every system; a scenario's `sometimes` names them)");
    for (name, describe) in pitfall_harness::coverage::catalog() {
        println!("  {name:<34} {describe}");
    }
    0
}

fn print_system(system: &Arc<dyn System>, scenarios: &[&Scenario], dir: &Path) {
    println!("\n== SYSTEM {} ==", system.name());
    println!("\nSCENARIOS ({})", dir.display());
    if scenarios.is_empty() {
        println!("  (none in this folder)");
    }
    let width = scenarios.iter().map(|s| s.name.len()).max().unwrap_or(8);
    for s in scenarios {
        let variants: Vec<String> = s
            .variants()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let pitfall = s
            .pitfall
            .map_or("         ".to_string(), |p| format!("pitfall {p}"));
        println!(
            "  {:<width$}  {pitfall}  {}  → {}",
            s.name,
            variants.join(", "),
            s.expect
        );
        println!("  {:<width$}  {}", "", s.description);
    }
    let components = system.components();
    if !components.is_empty() {
        println!("\nVARIANTS AND THE INVARIANTS THAT CATCH THE NAIVE ONES");
    }
    for c in &components {
        let pitfall = c.pitfall.map_or(" ".to_string(), |p| p.to_string());
        println!("  {pitfall}  {} ({})", c.title, c.key);
        for (name, describe) in &c.variants {
            println!("       {:<22} {describe}", format!("{name:?}"));
        }
        println!("       checked by: {}", c.checked_by.join(", "));
    }
    println!("\nINVARIANTS");
    for i in checkers::all(system) {
        println!("  {:<22} {}", i.name, i.describe);
    }
    let mut groups: BTreeMap<String, String> = BTreeMap::new();
    for s in scenarios {
        for g in &s.topology.crash_groups {
            groups.entry(g.name.clone()).or_insert(g.describe.clone());
        }
    }
    if !groups.is_empty() {
        println!("\nNAMED CRASHES (besides `crash` and `crash:<host>`)");
        for (name, describe) in groups {
            println!("  {name:<22} {describe}");
        }
    }
    let own = system.coverage_events();
    if !own.is_empty() {
        println!("\nCOVERAGE EVENTS OF THIS SYSTEM");
        for (name, describe) in own {
            println!("  {name:<34} {describe}");
        }
    }
}
