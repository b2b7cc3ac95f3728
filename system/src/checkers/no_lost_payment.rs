//! no-lost-payment: every committed payment has a reservation outcome —
//! reserved, or rejected for lack of stock — after the drain. (That it has at
//! most one is no-double-effect.)

use super::state::{appends_by_key, outcomes, payments};
use pitfall_harness::checkers::Finding;
use pitfall_harness::history::compact::Compact;
use std::cell::OnceCell;

pub fn check(history: &Compact<'_>) -> Vec<Finding> {
    let outcomes = outcomes(history);
    // Built only when a payment needs explaining.
    let appends_of = OnceCell::new();
    payments(history)
        .iter()
        .filter(|(id, _)| !outcomes.contains_key(*id))
        .map(|(id, (p, entry))| {
            let appends = appends_of
                .get_or_init(|| appends_by_key(history))
                .get(p.order_id.as_str())
                .cloned()
                .unwrap_or_default();
            let fate = if appends.is_empty() {
                "its event was never appended to the broker".to_string()
            } else {
                format!("its event was appended {} time(s) but never applied", appends.len())
            };
            let mut evidence = vec![*entry];
            evidence.extend(appends);
            (
                format!(
                    "payment {id} (order {}, request {}) was committed but has no reservation outcome: {fate}",
                    p.order_id, p.request_id
                ),
                evidence,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use pitfall_harness::checkers::Finding;
    use pitfall_harness::history::compact::with_entries;
    use pitfall_harness::history::Entry;

    fn check(history: &[Entry]) -> Vec<Finding> {
        with_entries(history, super::check)
    }

    #[test]
    fn holds_when_every_payment_has_an_outcome() {
        let h = vec![
            stock(0, 1, &[("apple", 1)]),
            payment(5, 1, "o1", "apple", 1),
            payment(6, 2, "o2", "apple", 1),
            append(7, "o1", 0),
            append(8, "o2", 1),
            reserve(10, 2, "o1", "apple", 1, 1, 0),
            reject(11, 3, "o2", "apple", 1),
        ];
        assert!(check(&h).is_empty());
    }

    #[test]
    fn catches_a_payment_whose_event_never_left() {
        let h = vec![
            stock(0, 1, &[("apple", 5)]),
            payment(5, 1, "o1", "apple", 1),
            payment(6, 2, "o2", "apple", 1),
            append(7, "o1", 0),
            reserve(10, 2, "o1", "apple", 1, 1, 4),
        ];
        let v = check(&h);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].0
                .starts_with("payment pay-o2 (order o2, request r-o2)"),
            "{}",
            v[0].0
        );
        assert!(
            v[0].0.ends_with("never appended to the broker"),
            "{}",
            v[0].0
        );
        assert_eq!(v[0].1, vec![2]);
    }
}
