//! no-phantom: no reservation outcome exists without a payment committed
//! before it.

use super::state::{outcomes, payments};
use pitfall_harness::checkers::Finding;
use pitfall_harness::history::compact::Compact;

pub fn check(history: &Compact<'_>) -> Vec<Finding> {
    let payments = payments(history);
    let mut found = Vec::new();
    for (id, applied) in outcomes(history).iter() {
        for o in applied {
            match payments.get(id) {
                None => found.push((
                    format!(
                        "{} outcome for payment {id} (order {}), which was never committed",
                        o.kind.name(),
                        o.row.order_id
                    ),
                    vec![o.entry],
                )),
                Some((_, committed)) if *committed > o.entry => found.push((
                    format!(
                        "{} outcome for payment {id} (order {}) before the payment committed",
                        o.kind.name(),
                        o.row.order_id
                    ),
                    vec![o.entry, *committed],
                )),
                Some(_) => {}
            }
        }
    }
    found
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
    fn holds_when_outcomes_follow_their_payments() {
        let h = vec![
            stock(0, 1, &[("apple", 5)]),
            payment(5, 1, "o1", "apple", 1),
            reserve(10, 2, "o1", "apple", 1, 1, 4),
        ];
        assert!(check(&h).is_empty());
    }

    #[test]
    fn catches_outcomes_without_or_before_their_payment() {
        let h = vec![
            stock(0, 1, &[("apple", 5)]),
            reserve(10, 2, "o1", "apple", 1, 1, 4),
            payment(15, 1, "o1", "apple", 1),
            reject(20, 3, "o9", "apple", 1),
        ];
        let v = check(&h);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(
            v[0].0
                .contains("pay-o1 (order o1) before the payment committed"),
            "{}",
            v[0].0
        );
        assert_eq!(v[0].1, vec![1, 2]);
        assert!(
            v[1].0
                .contains("pay-o9 (order o9), which was never committed"),
            "{}",
            v[1].0
        );
    }
}
