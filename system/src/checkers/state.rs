//! Facts the checkers share, rebuilt from DB commits in the history:
//! committed payments, inventory outcomes (reservations, rejections,
//! releases) and stock levels.

use crate::events::PaymentCompleted;
use crate::schema::{OutcomeRow, StockRow, PAYMENTS, REJECTIONS, RELEASES, RESERVATIONS, STOCK};
use crate::topology::{INVENTORY_DB, PAYMENTS_DB};
use pitfall_harness::history::{Entry, Event};
use pitfall_ports::ChangeOp;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeKind {
    Reserved,
    Rejected,
    /// A refund's release of whatever was reserved (its `qty` is what went
    /// back to stock, possibly 0).
    Released,
}

impl OutcomeKind {
    pub fn name(self) -> &'static str {
        match self {
            OutcomeKind::Reserved => "reserved",
            OutcomeKind::Rejected => "rejected",
            OutcomeKind::Released => "released",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub kind: OutcomeKind,
    pub row: OutcomeRow,
    /// The history entry of the commit that wrote it.
    pub entry: usize,
}

/// Each committed payment by payment id, with its commit's entry index.
pub fn payments(history: &[Entry]) -> BTreeMap<String, (PaymentCompleted, usize)> {
    let mut out = BTreeMap::new();
    for (i, e) in history.iter().enumerate() {
        let Event::DbCommit { db, changes, .. } = &e.event else {
            continue;
        };
        if db != PAYMENTS_DB {
            continue;
        }
        for c in changes {
            if c.table == PAYMENTS && c.op == ChangeOp::Insert {
                if let Ok(p) = serde_json::from_value::<PaymentCompleted>(c.data.clone()) {
                    out.entry(p.payment_id.clone()).or_insert((p, i));
                }
            }
        }
    }
    out
}

/// Every reservation, rejection and release written, grouped by payment id.
pub fn outcomes(history: &[Entry]) -> BTreeMap<String, Vec<Outcome>> {
    let mut out: BTreeMap<String, Vec<Outcome>> = BTreeMap::new();
    for (i, e) in history.iter().enumerate() {
        let Event::DbCommit { db, changes, .. } = &e.event else {
            continue;
        };
        if db != INVENTORY_DB {
            continue;
        }
        for c in changes {
            let kind = match c.table.as_str() {
                RESERVATIONS => OutcomeKind::Reserved,
                REJECTIONS => OutcomeKind::Rejected,
                RELEASES => OutcomeKind::Released,
                _ => continue,
            };
            if c.op != ChangeOp::Insert {
                continue;
            }
            if let Ok(row) = serde_json::from_value::<OutcomeRow>(c.data.clone()) {
                out.entry(row.payment_id.clone())
                    .or_default()
                    .push(Outcome {
                        kind,
                        row,
                        entry: i,
                    });
            }
        }
    }
    out
}

/// Stock levels after each inventory commit that touched them: product →
/// [(entry, available)], in commit order. The first is the initial stock.
pub fn stock_levels(history: &[Entry]) -> BTreeMap<String, Vec<(usize, i64)>> {
    let mut out: BTreeMap<String, Vec<(usize, i64)>> = BTreeMap::new();
    for (i, e) in history.iter().enumerate() {
        let Event::DbCommit { db, changes, .. } = &e.event else {
            continue;
        };
        if db != INVENTORY_DB {
            continue;
        }
        for c in changes.iter().filter(|c| c.table == STOCK) {
            if let Ok(s) = serde_json::from_value::<StockRow>(c.data.clone()) {
                out.entry(c.key.clone()).or_default().push((i, s.available));
            }
        }
    }
    out
}

/// Per record key, the entries that appended a record with it: built once,
/// so a checker that explains many findings stays linear.
pub fn appends_by_key(history: &[Entry]) -> BTreeMap<&str, Vec<usize>> {
    let mut out: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in history.iter().enumerate() {
        if let Event::Append { key, .. } = &e.event {
            out.entry(key.as_str()).or_default().push(i);
        }
    }
    out
}
