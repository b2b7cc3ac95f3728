//! Facts the checkers share, rebuilt from DB commits in the history:
//! committed payments, inventory outcomes (reservations, rejections,
//! releases) and stock levels.

use crate::events::PaymentCompleted;
use crate::schema::{OutcomeRow, StockRow, PAYMENTS, REJECTIONS, RELEASES, RESERVATIONS, STOCK};
use crate::topology::{INVENTORY_DB, PAYMENTS_DB};
use pitfall_harness::history::compact::{ChangeRef, Compact, Ev};
use pitfall_ports::ChangeOp;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::rc::Rc;

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

/// The entries of each DB's commits, in history order: built once, so
/// each walk over one DB's changes skips everything else.
fn commits_by_db(history: &Compact<'_>) -> Rc<BTreeMap<String, Vec<usize>>> {
    history.shared("commits by db", |h| {
        let mut out: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, e) in h.lines().iter().enumerate() {
            if let Ev::DbCommit { db, .. } = e.event {
                out.entry(db).or_default().push(i);
            }
        }
        out.into_iter().map(|(db, v)| (db.to_string(), v)).collect()
    })
}

/// Every change committed in `db` to a table `keep` keeps, in commit
/// order, with its commit's entry.
pub fn changes_in<'h>(
    history: &Compact<'h>,
    db: &str,
    keep: impl Fn(&str) -> bool,
) -> Vec<(usize, ChangeRef<'h>)> {
    let lines = history.lines();
    let commits = commits_by_db(history);
    let mut out = Vec::new();
    for &i in commits.get(db).into_iter().flatten() {
        if let Ev::DbCommit { changes, .. } = lines[i].event {
            out.extend(changes.iter().filter(|c| keep(c.table)).map(|c| (i, *c)));
        }
    }
    out
}

/// A row as one change wrote it.
pub struct Written<T> {
    /// The history entry of the commit.
    pub entry: usize,
    /// The row's key.
    pub key: String,
    pub op: ChangeOp,
    pub version: u64,
    pub row: T,
}

/// Every row written to `table` of `db` that parses as a `T`, in commit
/// order: decoded once per history, whichever checker asks first.
pub fn rows<T: DeserializeOwned + 'static>(
    history: &Compact<'_>,
    db: &'static str,
    table: &'static str,
) -> Rc<Vec<Written<T>>> {
    history.shared(&format!("rows {db}/{table}"), |h| {
        changes_in(h, db, |t| t == table)
            .into_iter()
            .filter_map(|(entry, c)| {
                Some(Written {
                    entry,
                    key: c.key.to_string(),
                    op: c.op,
                    version: c.version,
                    row: c.data.decode()?,
                })
            })
            .collect()
    })
}

/// Each committed payment by payment id, with its commit's entry index.
pub type Payments = BTreeMap<String, (PaymentCompleted, usize)>;

/// Each committed payment (its first insert), by payment id.
pub fn payments(history: &Compact<'_>) -> Rc<Payments> {
    history.shared("payments", |h| {
        let mut out = Payments::new();
        let written = rows::<PaymentCompleted>(h, PAYMENTS_DB, PAYMENTS);
        for w in written.iter().filter(|w| w.op == ChangeOp::Insert) {
            out.entry(w.row.payment_id.clone())
                .or_insert_with(|| (w.row.clone(), w.entry));
        }
        out
    })
}

/// Reservations, rejections and releases, grouped by payment id.
pub type Outcomes = BTreeMap<String, Vec<Outcome>>;

/// Every reservation, rejection and release written, grouped by payment id.
pub fn outcomes(history: &Compact<'_>) -> Rc<Outcomes> {
    history.shared("outcomes", |h| {
        let mut out = Outcomes::new();
        let outcome_tables = |t: &str| [RESERVATIONS, REJECTIONS, RELEASES].contains(&t);
        for (entry, c) in changes_in(h, INVENTORY_DB, outcome_tables) {
            let kind = match c.table {
                RESERVATIONS => OutcomeKind::Reserved,
                REJECTIONS => OutcomeKind::Rejected,
                RELEASES => OutcomeKind::Released,
                _ => continue,
            };
            if c.op != ChangeOp::Insert {
                continue;
            }
            if let Some(row) = c.data.decode::<OutcomeRow>() {
                out.entry(row.payment_id.clone())
                    .or_default()
                    .push(Outcome { kind, row, entry });
            }
        }
        out
    })
}

/// Stock levels after each inventory commit that touched them: product →
/// [(entry, available)], in commit order. The first is the initial stock.
pub fn stock_levels(history: &Compact<'_>) -> BTreeMap<String, Vec<(usize, i64)>> {
    let mut out: BTreeMap<String, Vec<(usize, i64)>> = BTreeMap::new();
    for w in rows::<StockRow>(history, INVENTORY_DB, STOCK).iter() {
        out.entry(w.key.clone())
            .or_default()
            .push((w.entry, w.row.available));
    }
    out
}

/// Per record key, the entries that appended a record with it: built once,
/// so a checker that explains many findings stays linear.
pub fn appends_by_key<'h>(history: &Compact<'h>) -> BTreeMap<&'h str, Vec<usize>> {
    let mut out: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in history.lines().iter().enumerate() {
        if let Ev::Append { key, .. } = e.event {
            out.entry(key).or_default().push(i);
        }
    }
    out
}
