//! stock-conservation: for every product, initial stock = current stock +
//! reserved quantity (reservations minus what refunds released), and stock
//! is never negative after any commit.

use super::state::{outcomes, stock_levels, OutcomeKind};
use pitfall_harness::checkers::Finding;
use pitfall_harness::history::compact::Compact;
use std::collections::BTreeMap;

pub fn check(history: &Compact<'_>) -> Vec<Finding> {
    let mut found = Vec::new();
    let levels = stock_levels(history);
    let mut reserved: BTreeMap<&str, (i64, Vec<usize>)> = BTreeMap::new();
    let all = outcomes(history);
    for o in all.values().flatten() {
        let held = match o.kind {
            OutcomeKind::Reserved => o.row.qty,
            OutcomeKind::Released => -o.row.qty,
            OutcomeKind::Rejected => continue,
        };
        let r = reserved.entry(o.row.product.as_str()).or_default();
        r.0 += held;
        r.1.push(o.entry);
    }
    for (product, series) in &levels {
        for &(entry, available) in series {
            if available < 0 {
                found.push((
                    format!("stock of {product} went negative ({available})"),
                    vec![entry],
                ));
            }
        }
        let (first_entry, initial) = series[0];
        let (last_entry, current) = *series.last().expect("non-empty series");
        let (held, entries) = reserved.remove(product.as_str()).unwrap_or_default();
        if initial != current + held {
            let mut evidence = vec![first_entry, last_entry];
            evidence.extend(entries);
            evidence.sort_unstable();
            evidence.dedup();
            found.push((
                format!(
                    "{product}: initial stock {initial} ≠ current {current} + reserved {held} (off by {})",
                    initial - current - held
                ),
                evidence,
            ));
        }
    }
    for (product, (held, entries)) in reserved {
        found.push((
            format!("{held} of {product} reserved, but it has no stock row"),
            entries,
        ));
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
    fn holds_when_every_reservation_took_its_stock() {
        let h = vec![
            stock(0, 1, &[("apple", 5)]),
            reserve(10, 2, "o1", "apple", 2, 1, 3),
            reserve(20, 3, "o2", "apple", 3, 2, 0),
            reject(30, 4, "o3", "apple", 1),
        ];
        assert!(check(&h).is_empty(), "{:?}", check(&h));
    }

    #[test]
    fn holds_when_a_refund_gives_its_reservation_back() {
        let h = vec![
            stock(0, 1, &[("apple", 5)]),
            reserve(10, 2, "o1", "apple", 2, 1, 3),
            release(20, 3, "o1", "apple", 2, 2, 5),
        ];
        assert!(check(&h).is_empty(), "{:?}", check(&h));
    }

    #[test]
    fn catches_a_release_that_gave_back_more_than_was_held() {
        let h = vec![
            stock(0, 1, &[("apple", 5)]),
            reserve(10, 2, "o1", "apple", 2, 1, 3),
            release(20, 3, "o1", "apple", 2, 2, 7), // stock over-credited
        ];
        let v = check(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].0.contains("initial stock 5 ≠ current 7 + reserved 0"),
            "{}",
            v[0].0
        );
    }

    #[test]
    fn catches_a_reservation_that_did_not_decrement_stock() {
        let h = vec![
            stock(0, 1, &[("apple", 5)]),
            reserve(10, 2, "o1", "apple", 2, 1, 3),
            reserve(20, 3, "o2", "apple", 2, 2, 3), // stock not decremented
        ];
        let v = check(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].0.contains("initial stock 5 ≠ current 3 + reserved 4"),
            "{}",
            v[0].0
        );
        assert_eq!(v[0].1, vec![0, 1, 2]);
    }

    #[test]
    fn catches_negative_stock() {
        let h = vec![
            stock(0, 1, &[("apple", 1)]),
            reserve(10, 2, "o1", "apple", 2, 1, -1),
        ];
        let v = check(&h);
        assert!(
            v.iter()
                .any(|(m, e)| m.contains("went negative (-1)") && e == &vec![1]),
            "{v:?}"
        );
    }
}
