//! Invariant checkers: pure functions from a history to the violations they
//! find. Each violation names the history lines that show it, so `repro` can
//! print the evidence.

mod state;

mod context_complete;
mod converges;
mod no_double_effect;
mod no_lost_payment;
mod no_phantom;
pub mod orders;
pub mod payload;
mod per_key_order;
pub mod queue;
mod stock_conservation;

#[cfg(test)]
pub(crate) mod fixtures;

use crate::history::Entry;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Invariant {
    StockConservation,
    NoLostPayment,
    NoDoubleEffect,
    NoPhantom,
    Converges,
    Queue,
    ContextComplete,
    PerKeyOrder,
    PayloadIntegrity,
    NoDanglingReference,
    NoPartialAssembly,
    ReadAfterWrite,
    ViewConvergence,
    SnapshotConsistency,
}

impl Invariant {
    pub const ALL: [Invariant; 14] = [
        Invariant::StockConservation,
        Invariant::NoLostPayment,
        Invariant::NoDoubleEffect,
        Invariant::NoPhantom,
        Invariant::Converges,
        Invariant::Queue,
        Invariant::ContextComplete,
        Invariant::PerKeyOrder,
        Invariant::PayloadIntegrity,
        Invariant::NoDanglingReference,
        Invariant::NoPartialAssembly,
        Invariant::ReadAfterWrite,
        Invariant::ViewConvergence,
        Invariant::SnapshotConsistency,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Invariant::StockConservation => "stock-conservation",
            Invariant::NoLostPayment => "no-lost-payment",
            Invariant::NoDoubleEffect => "no-double-effect",
            Invariant::NoPhantom => "no-phantom",
            Invariant::Converges => "converges",
            Invariant::Queue => "queue",
            Invariant::ContextComplete => "context-complete",
            Invariant::PerKeyOrder => "per-key-order",
            Invariant::PayloadIntegrity => "payload-integrity",
            Invariant::NoDanglingReference => "no-dangling-reference",
            Invariant::NoPartialAssembly => "no-partial-assembly",
            Invariant::ReadAfterWrite => "read-after-write",
            Invariant::ViewConvergence => "view-convergence",
            Invariant::SnapshotConsistency => "snapshot-consistency",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Invariant::StockConservation => {
                "for every product, initial stock = current stock + reserved quantity, and stock is never negative"
            }
            Invariant::NoLostPayment => {
                "every committed payment has a reservation outcome (reserved or rejected) after the drain"
            }
            Invariant::NoDoubleEffect => "no payment's side effect is applied more than once",
            Invariant::NoPhantom => "no reservation outcome exists without a payment committed before it",
            Invariant::Converges => {
                "after faults heal, the system drains (consumers caught up, nothing parked, CDC confirmed) in bounded time"
            }
            Invariant::ContextComplete => {
                "every event derived from request R carries R's requestId and userId as headers"
            }
            Invariant::PerKeyOrder => {
                "for every payment, the inventory's final effect matches its highest revision, and no older revision is applied after a newer one"
            }
            Invariant::PayloadIntegrity => {
                "every attachment a committed payment names is archived exactly once, intact (size and SHA-256 match)"
            }
            Invariant::NoDanglingReference => {
                "a claim-check reference never points at an object that does not exist yet"
            }
            Invariant::NoPartialAssembly => {
                "no archived attachment is ever visible incomplete or misassembled"
            }
            Invariant::ReadAfterWrite => {
                "once a shopper got OK for placing an order, the orders service's read endpoint shows it placed"
            }
            Invariant::ViewConvergence => {
                "after the drain, the orders service's state agrees with payments, inventory and refunds, and every materialized view and snapshot equals it"
            }
            Invariant::SnapshotConsistency => {
                "an event-sourced snapshot never disagrees with a replay of the events up to it"
            }
            Invariant::Queue => {
                "the broker log and the polls show no queue anomaly (lost-write, unseen, duplicate, inconsistent-offsets, nonmonotonic-send/poll, poll-skip) outside what the producer variant allows"
            }
        }
    }

    pub fn check(self, history: &[Entry]) -> Vec<Violation> {
        let found = match self {
            Invariant::StockConservation => stock_conservation::check(history),
            Invariant::NoLostPayment => no_lost_payment::check(history),
            Invariant::NoDoubleEffect => no_double_effect::check(history),
            Invariant::NoPhantom => no_phantom::check(history),
            Invariant::Converges => converges::check(history),
            Invariant::Queue => queue::check(history),
            Invariant::ContextComplete => context_complete::check(history),
            Invariant::PerKeyOrder => per_key_order::check(history),
            Invariant::PayloadIntegrity => payload::check_integrity(history),
            Invariant::NoDanglingReference => payload::check_no_dangling_reference(history),
            Invariant::NoPartialAssembly => payload::check_no_partial_assembly(history),
            Invariant::ReadAfterWrite => orders::check_read_after_write(history),
            Invariant::ViewConvergence => orders::check_view_convergence(history),
            Invariant::SnapshotConsistency => orders::check_snapshot_consistency(history),
        };
        found
            .into_iter()
            .map(|(message, events)| Violation {
                invariant: self,
                message,
                events,
            })
            .collect()
    }
}

/// One way a history breaks an invariant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub invariant: Invariant,
    pub message: String,
    /// Indices (0-based) of the history entries that show it.
    pub events: Vec<usize>,
}

/// Run every invariant.
pub fn check_all(history: &[Entry]) -> Vec<Violation> {
    Invariant::ALL
        .iter()
        .flat_map(|i| i.check(history))
        .collect()
}
