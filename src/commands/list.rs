//! `pitfall list`: what the suite contains and what it checks.

use crate::BAD_INPUT;
use pitfall_sim::checkers::Invariant;
use pitfall_sim::faults::FaultKind;
use pitfall_sim::scenario::{self, Expect};
use pitfall_system::blocks::payload::Strategy;
use pitfall_system::variants::{Context, Idempotency, Ordering, OrdersModel, Publish};
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
        let v = &s.variants;
        let mut variants = vec![v.producer.name(), v.consumer.name()];
        if v.context != Context::default() {
            variants.push(v.context.name());
        }
        if v.ordering != Ordering::default() {
            variants.push(v.ordering.name());
        }
        if let Some(p) = &s.payloads {
            variants.push(p.strategy.name());
        }
        if let Some(o) = &s.orders {
            variants.push(o.model.name());
        }
        println!(
            "  {:<width$}  pitfall {}  {}  → {expect}",
            s.name,
            s.pitfall,
            variants.join(" + ")
        );
        println!("  {:<width$}  {}", "", s.description);
    }
    println!("\nINVARIANTS");
    for i in Invariant::ALL {
        println!("  {:<20} {}", i.name(), i.describe());
    }
    println!("\nPITFALLS, THEIR VARIANTS AND THE INVARIANTS THAT CATCH THE NAIVE ONES");
    let variants = |key: &str, all: &[(&str, &str)]| {
        for (name, describe) in all {
            println!("    {key} = {:<20} {describe}", format!("{name:?}"));
        }
    };
    let checked_by = |invariants: &[Invariant]| {
        let names: Vec<&str> = invariants.iter().map(|i| i.name()).collect();
        println!("    checked by: {}", names.join(", "));
    };
    println!("  1  dual write: how payments gets its event out");
    variants("producer", &Publish::ALL.map(|p| (p.name(), p.describe())));
    checked_by(&[
        Invariant::NoLostPayment,
        Invariant::NoPhantom,
        Invariant::Queue,
    ]);
    println!("  2  event sourcing everywhere: how the orders service keeps its order-status view ([orders] model)");
    variants(
        "model   ",
        &OrdersModel::ALL.map(|m| (m.name(), m.describe())),
    );
    checked_by(&[
        Invariant::ReadAfterWrite,
        Invariant::ViewConvergence,
        Invariant::SnapshotConsistency,
    ]);
    println!("  3  context propagation: requestId/userId across every hop");
    variants("context ", &Context::ALL.map(|c| (c.name(), c.describe())));
    checked_by(&[Invariant::ContextComplete]);
    println!(
        "  4  large payloads: how an order's attachment reaches the archive ([payloads] strategy)"
    );
    variants("payloads", &Strategy::ALL.map(|s| (s.name(), s.describe())));
    checked_by(&[
        Invariant::PayloadIntegrity,
        Invariant::NoDanglingReference,
        Invariant::NoPartialAssembly,
    ]);
    println!("  5  duplicates and ordering: how inventory applies what it consumes");
    variants(
        "consumer",
        &Idempotency::ALL.map(|c| (c.name(), c.describe())),
    );
    variants("ordering", &Ordering::ALL.map(|o| (o.name(), o.describe())));
    checked_by(&[
        Invariant::NoDoubleEffect,
        Invariant::PerKeyOrder,
        Invariant::StockConservation,
    ]);
    println!("\nFAULT KINDS");
    for k in FaultKind::ALL {
        println!("  {:<20} {}", k.name(), k.describe());
    }
    0
}
