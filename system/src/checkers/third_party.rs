//! Pitfall 5 outside the DB, from the carrier's own commits: `no-double-call`
//! (the carrier shipped at most once per reservation) and `call-completes`
//! (every reservation was shipped by the end of the drain). Both hold
//! vacuously in runs without a third party.

use super::state::{outcomes, rows, OutcomeKind};
use crate::schema::{ShipmentRow, SHIPMENTS};
use crate::topology::CARRIER_DB;
use pitfall_harness::checkers::Finding;
use pitfall_harness::history::compact::Compact;
use pitfall_ports::ChangeOp;
use std::collections::BTreeMap;

/// Every shipment the carrier performed, by payment id: (shipment id, the
/// history entry of its commit).
fn shipments(history: &Compact<'_>) -> BTreeMap<String, Vec<(String, usize)>> {
    let mut out: BTreeMap<String, Vec<(String, usize)>> = BTreeMap::new();
    let written = rows::<ShipmentRow>(history, CARRIER_DB, SHIPMENTS);
    for w in written.iter().filter(|w| w.op == ChangeOp::Insert) {
        out.entry(w.row.request.payment_id.clone())
            .or_default()
            .push((w.key.clone(), w.entry));
    }
    out
}

/// Whether the run called a third party, from its `third-party` variant.
fn has_third_party(history: &Compact<'_>) -> bool {
    history.variant("third-party").is_some()
}

/// no-double-call: no payment was shipped more than once.
pub fn check_no_double_call(history: &Compact<'_>) -> Vec<Finding> {
    shipments(history)
        .into_iter()
        .filter(|(_, shipped)| shipped.len() > 1)
        .map(|(payment, shipped)| {
            let ids: Vec<&str> = shipped.iter().map(|(id, _)| id.as_str()).collect();
            (
                format!(
                    "payment {payment} was shipped {} times by the carrier ({})",
                    shipped.len(),
                    ids.join(", ")
                ),
                shipped.iter().map(|(_, entry)| *entry).collect(),
            )
        })
        .collect()
}

/// call-completes: every payment the inventory reserved was shipped.
pub fn check_call_completes(history: &Compact<'_>) -> Vec<Finding> {
    if !has_third_party(history) {
        return Vec::new();
    }
    let shipped = shipments(history);
    outcomes(history)
        .iter()
        .filter_map(|(payment, applied)| {
            let reserved = applied.iter().find(|o| o.kind == OutcomeKind::Reserved)?;
            (!shipped.contains_key(payment)).then(|| {
                (
                    format!(
                        "payment {payment} (order {}) was reserved, and the carrier never shipped it",
                        reserved.row.order_id
                    ),
                    vec![reserved.entry],
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use pitfall_harness::checkers::Finding;
    use pitfall_harness::history::compact::with_entries;
    use pitfall_harness::history::Entry;

    fn check_no_double_call(history: &[Entry]) -> Vec<Finding> {
        with_entries(history, super::check_no_double_call)
    }

    fn check_call_completes(history: &[Entry]) -> Vec<Finding> {
        with_entries(history, super::check_call_completes)
    }

    #[test]
    fn no_double_call_holds_when_each_payment_ships_once() {
        let h = vec![
            run_with_third_party(),
            stock(0, 1, &[("apple", 5)]),
            payment(5, 1, "o1", "apple", 1),
            reserve(10, 2, "o1", "apple", 1, 1, 4),
            shipment(11, 1, "shp-1", "o1", Some("pay-o1@1")),
        ];
        assert!(check_no_double_call(&h).is_empty());
        assert!(check_call_completes(&h).is_empty());
    }

    #[test]
    fn no_double_call_catches_a_payment_shipped_twice() {
        let h = vec![
            run_with_third_party(),
            stock(0, 1, &[("apple", 5)]),
            payment(5, 1, "o1", "apple", 1),
            shipment(9, 1, "shp-1", "o1", None),
            shipment(10, 2, "shp-2", "o1", None),
            reserve(12, 2, "o1", "apple", 1, 1, 4),
        ];
        let v = check_no_double_call(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(
            v[0].0,
            "payment pay-o1 was shipped 2 times by the carrier (shp-1, shp-2)"
        );
        assert_eq!(v[0].1, vec![3, 4]);
    }

    #[test]
    fn call_completes_catches_a_reservation_never_shipped() {
        let h = vec![
            run_with_third_party(),
            stock(0, 1, &[("apple", 5)]),
            payment(5, 1, "o1", "apple", 1),
            payment(6, 2, "o2", "apple", 1),
            reserve(10, 2, "o1", "apple", 1, 1, 4),
            reserve(11, 3, "o2", "apple", 1, 2, 3),
            shipment(12, 1, "shp-1", "o1", Some("pay-o1@1")),
        ];
        let v = check_call_completes(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].0.starts_with("payment pay-o2 (order o2) was reserved"));
        assert_eq!(v[0].1, vec![5]);
    }

    #[test]
    fn call_completes_ignores_rejections_and_runs_without_a_carrier() {
        let reserved_unshipped = vec![
            stock(0, 1, &[("apple", 5)]),
            payment(5, 1, "o1", "apple", 1),
            reserve(10, 2, "o1", "apple", 1, 1, 4),
        ];
        assert!(check_call_completes(&reserved_unshipped).is_empty());
        let rejected = vec![
            run_with_third_party(),
            stock(0, 1, &[("apple", 0)]),
            payment(5, 1, "o1", "apple", 1),
            reject(10, 2, "o1", "apple", 1),
        ];
        assert!(check_call_completes(&rejected).is_empty());
    }
}
