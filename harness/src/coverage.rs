//! Coverage ("sometimes") events: the names of the interesting things the
//! simulated servers, the adapters and the building blocks mark when they
//! happen — a duplicate delivered, an ack lost and retried, a crash point
//! fired — and what each seed of a sweep hit. A scenario declares the ones
//! its sweep must see at least once (`sometimes = [...]`), so a harness
//! change that stops injecting a fault fails the sweep instead of leaving
//! the remedies green for nothing (FoundationDB's `CODE_PROBE`,
//! Antithesis's "sometimes" assertions).
//!
//! Marks reach the history through [`crate::history::History::mark`] (the
//! servers) or [`pitfall_ports::Env::mark`] (services and blocks), once per
//! process and name in a run.

use crate::history::{Entry, Event};
pub use pitfall_ports::coverage::*;
use std::collections::BTreeSet;

/// Every coverage event a scenario may declare: [`EVENTS`], and each crash
/// point's two ([`crate::crash_points::Boundary::events`]).
pub fn catalog() -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = EVENTS
        .iter()
        .map(|(name, describe)| (name.to_string(), describe.to_string()))
        .collect();
    for boundary in crate::crash_points::Boundary::ALL {
        all.extend(boundary.events());
    }
    all
}

/// The coverage events one history hit.
pub fn hit(history: &[Entry]) -> BTreeSet<String> {
    history
        .iter()
        .filter_map(|e| match &e.event {
            Event::Coverage { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::History;

    #[test]
    fn a_mark_is_recorded_once_per_process_and_name() {
        let history = History::new();
        history.mark("broker", DUPLICATE_DELIVERED);
        history.mark("broker", DUPLICATE_DELIVERED);
        history.mark("inventory", DUPLICATE_DELIVERED);
        history.mark("inventory", EVENT_PARKED);
        let entries = history.entries();
        assert_eq!(entries.len(), 3);
        assert_eq!(
            hit(&entries),
            BTreeSet::from([DUPLICATE_DELIVERED.to_string(), EVENT_PARKED.to_string()])
        );
    }

    #[test]
    fn the_catalog_names_each_event_once() {
        let names: Vec<String> = catalog().into_iter().map(|(n, _)| n).collect();
        let distinct: BTreeSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), names.len());
        assert!(names.contains(&"crash-point:after-db-commit".to_string()));
        assert!(names.contains(&"fail-point:before-produce".to_string()));
    }
}
