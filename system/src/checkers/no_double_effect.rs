//! no-double-effect: no payment's side effect is applied more than once: at
//! most one reservation or rejection per payment, and one release per refund.

use super::state::{appends_by_key, outcomes, OutcomeKind};
use pitfall_harness::checkers::Finding;
use pitfall_harness::history::compact::Compact;
use std::cell::OnceCell;

pub fn check(history: &Compact<'_>) -> Vec<Finding> {
    // Built only when a payment needs explaining.
    let appends_of = OnceCell::new();
    outcomes(history)
        .iter()
        .filter(|(_, applied)| {
            // One reservation or rejection per payment, and one release per
            // refund.
            let releases = applied
                .iter()
                .filter(|o| o.kind == OutcomeKind::Released)
                .count();
            releases > 1 || applied.len() - releases > 1
        })
        .map(|(id, applied)| {
            let kinds: Vec<&str> = applied.iter().map(|o| o.kind.name()).collect();
            let order = applied[0].row.order_id.clone();
            let appends = appends_of
                .get_or_init(|| appends_by_key(history))
                .get(order.as_str())
                .cloned()
                .unwrap_or_default();
            let reserved: i64 = applied
                .iter()
                .filter(|o| o.kind == OutcomeKind::Reserved)
                .map(|o| o.row.qty)
                .sum();
            let mut evidence: Vec<usize> = applied.iter().map(|o| o.entry).collect();
            evidence.extend(&appends);
            evidence.sort_unstable();
            (
                format!(
                    "payment {id} (order {order}) was applied {} times ({}), {reserved} units reserved; its event was appended {} time(s)",
                    applied.len(),
                    kinds.join(", "),
                    appends.len()
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
    fn holds_when_each_payment_is_applied_once_even_if_delivered_twice() {
        let h = vec![
            stock(0, 1, &[("apple", 5)]),
            payment(5, 1, "o1", "apple", 1),
            append(7, "o1", 0),
            append(8, "o1", 1),
            reserve(10, 2, "o1", "apple", 1, 1, 4),
        ];
        assert!(check(&h).is_empty());
    }

    #[test]
    fn holds_when_a_payment_is_reserved_once_and_released_once() {
        let h = vec![
            stock(0, 1, &[("apple", 5)]),
            payment(5, 1, "o1", "apple", 1),
            reserve(10, 2, "o1", "apple", 1, 1, 4),
            release(12, 3, "o1", "apple", 1, 2, 5),
        ];
        assert!(check(&h).is_empty(), "{:?}", check(&h));
    }

    #[test]
    fn catches_a_refund_released_twice() {
        let h = vec![
            stock(0, 1, &[("apple", 5)]),
            payment(5, 1, "o1", "apple", 1),
            reserve(10, 2, "o1", "apple", 1, 1, 4),
            release(12, 3, "o1", "apple", 1, 2, 5),
            release(14, 4, "o1", "apple", 1, 3, 6),
        ];
        let v = check(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].0.contains("(reserved, released, released)"),
            "{}",
            v[0].0
        );
    }

    #[test]
    fn catches_a_payment_applied_twice() {
        let h = vec![
            stock(0, 1, &[("apple", 5)]),
            payment(5, 1, "o1", "apple", 2),
            append(7, "o1", 0),
            reserve(10, 2, "o1", "apple", 2, 1, 3),
            reserve(12, 3, "o1", "apple", 2, 2, 1),
        ];
        let v = check(&h);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].0
                .contains("applied 2 times (reserved, reserved), 4 units reserved"),
            "{}",
            v[0].0
        );
        assert_eq!(v[0].1, vec![2, 3, 4]);
    }
}
