//! per-key-order: for every payment, the inventory's final effect reflects
//! the payment's highest committed revision (a refunded payment holds no
//! stock; a completed one is reserved or rejected), and no effect of an older
//! revision is applied after a newer one. Inventory records the revision it
//! applied in its effects table, in the same transaction as the effect.

use super::state::rows;
use crate::events::{PaymentCompleted, PaymentStatus};
use crate::schema::{EffectRow, EffectStatus, EFFECTS, PAYMENTS};
use crate::topology::{INVENTORY_DB, PAYMENTS_DB};
use pitfall_harness::checkers::Finding;
use pitfall_harness::history::compact::Compact;
use std::collections::BTreeMap;

/// Whether an effect is what a payment at this status should leave behind.
fn matches(status: PaymentStatus, effect: EffectStatus) -> bool {
    match status {
        PaymentStatus::Completed => effect != EffectStatus::Released,
        PaymentStatus::Refunded => effect == EffectStatus::Released,
    }
}

pub fn check(history: &Compact<'_>) -> Vec<Finding> {
    // Payment id → (highest revision, its status, the commit's entry).
    let mut latest: BTreeMap<&str, (u64, PaymentStatus, usize)> = BTreeMap::new();
    let payments = rows::<PaymentCompleted>(history, PAYMENTS_DB, PAYMENTS);
    for w in payments.iter() {
        let (version, status, i) = (w.version, w.row.status, w.entry);
        let slot = latest
            .entry(w.row.payment_id.as_str())
            .or_insert((version, status, i));
        if version >= slot.0 {
            *slot = (version, status, i);
        }
    }
    // Payment id → every effect written, in commit order.
    let mut effects: BTreeMap<&str, Vec<(usize, &EffectRow)>> = BTreeMap::new();
    let written = rows::<EffectRow>(history, INVENTORY_DB, EFFECTS);
    for w in written.iter() {
        effects
            .entry(w.key.as_str())
            .or_default()
            .push((w.entry, &w.row));
    }
    let mut found = Vec::new();
    for (payment, applied) in &effects {
        let mut newest: Option<&(usize, &EffectRow)> = None;
        for step in applied {
            if let Some(prev) = newest.filter(|prev| step.1.revision < prev.1.revision) {
                found.push((
                    format!(
                        "payment {payment}: revision {} ({:?}) applied after revision {} ({:?})",
                        step.1.revision, step.1.status, prev.1.revision, prev.1.status
                    ),
                    vec![prev.0, step.0],
                ));
            }
            if newest.is_none_or(|prev| step.1.revision >= prev.1.revision) {
                newest = Some(step);
            }
        }
        let (last_entry, last) = applied.last().expect("non-empty");
        let Some(&(revision, status, committed)) = latest.get(*payment) else {
            continue;
        };
        if last.revision != revision || !matches(status, last.status) {
            found.push((
                format!(
                    "payment {payment}: the inventory ends at revision {} ({:?}), but the payment's highest revision is {revision} ({status:?})",
                    last.revision, last.status
                ),
                vec![committed, *last_entry],
            ));
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
    use crate::schema::EffectStatus;

    #[test]
    fn holds_when_revisions_apply_in_order_and_the_last_one_wins() {
        let h = vec![
            stock(0, 1, &[("apple", 5)]),
            payment(5, 1, "o1", "apple", 1),
            payment(6, 2, "o2", "apple", 1),
            refund(7, 3, "o1", "apple", 1),
            effect(10, 2, "o1", 1, EffectStatus::Reserved),
            effect(11, 3, "o2", 1, EffectStatus::Rejected),
            effect(12, 4, "o1", 2, EffectStatus::Released),
        ];
        assert!(check(&h).is_empty(), "{:?}", check(&h));
    }

    #[test]
    fn holds_when_a_stale_revision_is_discarded() {
        // The refund overtook the payment; the payment's event, arriving
        // later, changed nothing.
        let h = vec![
            payment(5, 1, "o1", "apple", 1),
            refund(7, 2, "o1", "apple", 1),
            effect(10, 2, "o1", 2, EffectStatus::Released),
        ];
        assert!(check(&h).is_empty(), "{:?}", check(&h));
    }

    #[test]
    fn catches_an_older_revision_applied_after_a_newer_one() {
        let h = vec![
            payment(5, 1, "o1", "apple", 1),
            refund(7, 2, "o1", "apple", 1),
            effect(10, 2, "o1", 2, EffectStatus::Released),
            effect(11, 3, "o1", 1, EffectStatus::Reserved),
        ];
        let v = check(&h);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(
            v[0].0
                .contains("revision 1 (Reserved) applied after revision 2 (Released)"),
            "{}",
            v[0].0
        );
        assert_eq!(v[0].1, vec![2, 3]);
        assert!(
            v[1].0.contains(
                "ends at revision 1 (Reserved), but the payment's highest revision is 2 (Refunded)"
            ),
            "{}",
            v[1].0
        );
        assert_eq!(v[1].1, vec![1, 3]);
    }

    #[test]
    fn catches_a_refund_that_never_reached_the_inventory() {
        let h = vec![
            payment(5, 1, "o1", "apple", 1),
            refund(7, 2, "o1", "apple", 1),
            effect(10, 2, "o1", 1, EffectStatus::Reserved),
        ];
        let v = check(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].0.contains("highest revision is 2"), "{}", v[0].0);
    }
}
