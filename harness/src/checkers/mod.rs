//! Invariants: named checkers, pure functions from a history to the
//! violations they find. Each violation names the history lines that show
//! it, so `repro` can print the evidence.
//!
//! The generic ones, for any system, live here: [`converges`], [`queue`]
//! (Jepsen's Kafka queue anomalies, under the system's policy) and
//! [`context_complete`]. A system adds its own with [`Invariant::new`].

pub mod context_complete;
pub mod converges;
pub mod queue;

pub use queue::Anomaly;

use crate::history::compact::{with_entries, Compact};
use crate::history::Entry;
use crate::system::System;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// What a checker found: a message and the (0-based) history lines that
/// show it.
pub type Finding = (String, Vec<usize>);

type EntriesFn = dyn Fn(&[Entry]) -> Vec<Finding> + Send + Sync;
type CompactFn = dyn for<'a> Fn(&Compact<'a>) -> Vec<Finding> + Send + Sync;

/// A checker over the entries, or over the shared compact form.
#[derive(Clone)]
enum CheckFn {
    Entries(Arc<EntriesFn>),
    Compact(Arc<CompactFn>),
}

/// A named property of every history of a system.
#[derive(Clone)]
pub struct Invariant {
    pub name: &'static str,
    pub describe: &'static str,
    check: CheckFn,
}

impl fmt::Debug for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Invariant {
    /// `check` must be a pure function of the history.
    pub fn new(
        name: &'static str,
        describe: &'static str,
        check: impl Fn(&[Entry]) -> Vec<Finding> + Send + Sync + 'static,
    ) -> Invariant {
        Invariant {
            name,
            describe,
            check: CheckFn::Entries(Arc::new(check)),
        }
    }

    /// An invariant over the history's [`Compact`] form, which every such
    /// checker shares (parsed once, values decoded only where needed,
    /// [`Compact::shared`] facts derived once): the fast way for long
    /// histories. `check` must be a pure function of the history.
    pub fn over_compact(
        name: &'static str,
        describe: &'static str,
        check: impl for<'a> Fn(&Compact<'a>) -> Vec<Finding> + Send + Sync + 'static,
    ) -> Invariant {
        Invariant {
            name,
            describe,
            check: CheckFn::Compact(Arc::new(check)),
        }
    }

    pub fn check(&self, history: &[Entry]) -> Vec<Violation> {
        let found = match &self.check {
            CheckFn::Entries(check) => check(history),
            CheckFn::Compact(check) => with_entries(history, |c| check(c)),
        };
        self.violations(found)
    }

    /// The same verdict as [`Invariant::check`] on the entries it holds.
    pub fn check_compact(&self, history: &Compact<'_>) -> Vec<Violation> {
        let found = match &self.check {
            CheckFn::Entries(check) => check(history.entries()),
            CheckFn::Compact(check) => check(history),
        };
        self.violations(found)
    }

    fn violations(&self, found: Vec<Finding>) -> Vec<Violation> {
        found
            .into_iter()
            .map(|(message, events)| Violation {
                invariant: self.name.to_string(),
                message,
                events,
            })
            .collect()
    }
}

/// One way a history breaks an invariant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub invariant: String,
    pub message: String,
    /// Indices (0-based) of the history entries that show it.
    pub events: Vec<usize>,
}

/// The names of the generic invariants.
pub const GENERIC: [&str; 3] = ["converges", "queue", "context-complete"];

/// The generic invariants, with `system`'s queue policy.
pub fn generic(system: &Arc<dyn System>) -> Vec<Invariant> {
    let policy = system.clone();
    vec![
        Invariant::over_compact(
            "converges",
            "after faults heal, the system drains (consumers caught up, nothing parked, CDC confirmed) in bounded time",
            converges::check,
        ),
        Invariant::over_compact(
            "queue",
            "the broker log and the polls show no queue anomaly (lost-write, unseen, duplicate, inconsistent-offsets, nonmonotonic-send/poll, poll-skip) outside what the variants allow",
            move |history| queue::check(history, &policy.queue_allowed(&run_variants(history))),
        ),
        Invariant::over_compact(
            "context-complete",
            "every event derived from request R carries R's requestId and userId as headers",
            context_complete::check,
        ),
    ]
}

/// Every invariant of `system`: its own, then the generic ones.
pub fn all(system: &Arc<dyn System>) -> Vec<Invariant> {
    let mut all = system.invariants();
    all.extend(generic(system));
    all
}

/// The variants a history's run header records.
pub fn run_variants(history: &Compact<'_>) -> BTreeMap<String, String> {
    history
        .variants()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Run every invariant over entries recorded in memory (each checker over
/// the compact form sees it made once, for all of them).
pub fn check_all(invariants: &[Invariant], history: &[Entry]) -> Vec<Violation> {
    let over_entries = |i: &Invariant| matches!(i.check, CheckFn::Entries(_));
    if invariants.iter().all(over_entries) {
        return invariants.iter().flat_map(|i| i.check(history)).collect();
    }
    with_entries(history, |c| check_all_compact(invariants, c))
}

/// Run every invariant over a history in compact form.
pub fn check_all_compact(invariants: &[Invariant], history: &Compact<'_>) -> Vec<Violation> {
    invariants
        .iter()
        .flat_map(|i| i.check_compact(history))
        .collect()
}
