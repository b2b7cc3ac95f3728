//! The bank's invariants, pure functions of the history:
//!
//! - `money-conserved`: the accounts' total never changes and no balance
//!   goes negative; every ledger booking nets to zero.
//! - `booked-exactly-once`: every committed transfer is booked in the
//!   ledger exactly once (one debit and one credit), and nothing is booked
//!   that was never transferred.

use crate::model::{Entry, TransferMade, ACCOUNTS, BANK_DB, ENTRIES, LEDGER_DB, TRANSFERS_TABLE};
use pitfall::harness::checkers::Finding;
use pitfall::harness::history::{Entry as Line, Event};
use pitfall::ports::Change;
use std::collections::BTreeMap;

/// Every change to `table` of `db`, with its history line.
fn changes<'h>(history: &'h [Line], db: &str, table: &str) -> Vec<(&'h Change, usize)> {
    history
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match &e.event {
            Event::DbCommit { db: d, changes, .. } if d == db => Some((changes, i)),
            _ => None,
        })
        .flat_map(|(changes, i)| {
            changes
                .iter()
                .filter(move |c| c.table == table)
                .map(move |c| (c, i))
        })
        .collect()
}

pub fn money_conserved(history: &[Line]) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut balances: BTreeMap<&str, i64> = BTreeMap::new();
    let mut total: Option<i64> = None;
    let mut last_line = None;
    for (change, i) in changes(history, BANK_DB, ACCOUNTS) {
        // A commit's changes are checked together, once all are applied.
        if last_line.is_some_and(|l| l != i) {
            check_total(&balances, &mut total, last_line, &mut found);
        }
        let balance = change.data["balance"].as_i64().unwrap_or(0);
        if balance < 0 {
            found.push((format!("account {} went to {balance}", change.key), vec![i]));
        }
        balances.insert(&change.key, balance);
        last_line = Some(i);
    }
    check_total(&balances, &mut total, last_line, &mut found);
    let mut bookings: BTreeMap<String, (i64, Vec<usize>)> = BTreeMap::new();
    for (change, i) in changes(history, LEDGER_DB, ENTRIES) {
        if let Ok(entry) = serde_json::from_value::<Entry>(change.data.clone()) {
            let b = bookings.entry(entry.transfer_id).or_default();
            b.0 += entry.delta;
            b.1.push(i);
        }
    }
    for (transfer, (net, lines)) in bookings {
        if net != 0 {
            found.push((
                format!("the ledger's entries for {transfer} net to {net}, not 0"),
                lines,
            ));
        }
    }
    found
}

fn check_total(
    balances: &BTreeMap<&str, i64>,
    total: &mut Option<i64>,
    line: Option<usize>,
    found: &mut Vec<Finding>,
) {
    let Some(line) = line else { return };
    let now: i64 = balances.values().sum();
    match *total {
        None => *total = Some(now),
        Some(before) if before != now => found.push((
            format!("the accounts held {before} in all, then {now}"),
            vec![line],
        )),
        Some(_) => {}
    }
}

pub fn booked_exactly_once(history: &[Line]) -> Vec<Finding> {
    let mut transfers: BTreeMap<String, (TransferMade, usize)> = BTreeMap::new();
    for (change, i) in changes(history, BANK_DB, TRANSFERS_TABLE) {
        if let Ok(t) = serde_json::from_value::<TransferMade>(change.data.clone()) {
            transfers.entry(t.transfer_id.clone()).or_insert((t, i));
        }
    }
    // transfer → (debits, credits, lines)
    let mut booked: BTreeMap<String, (u32, u32, Vec<usize>)> = BTreeMap::new();
    for (change, i) in changes(history, LEDGER_DB, ENTRIES) {
        if let Ok(entry) = serde_json::from_value::<Entry>(change.data.clone()) {
            let b = booked.entry(entry.transfer_id).or_default();
            if entry.delta < 0 {
                b.0 += 1;
            } else {
                b.1 += 1;
            }
            b.2.push(i);
        }
    }
    let mut found = Vec::new();
    for (id, (t, line)) in &transfers {
        match booked.get(id) {
            None => found.push((
                format!(
                    "transfer {id} ({} from {} to {}, request {}) was made but never booked",
                    t.amount, t.from, t.to, t.request_id
                ),
                vec![*line],
            )),
            Some((1, 1, _)) => {}
            Some((debits, credits, lines)) => {
                let mut evidence = vec![*line];
                evidence.extend(lines);
                found.push((
                    format!("transfer {id} was booked with {debits} debit(s) and {credits} credit(s), not once"),
                    evidence,
                ));
            }
        }
    }
    for (id, (_, _, lines)) in &booked {
        if !transfers.contains_key(id) {
            found.push((format!("{id} was booked but never made"), lines.clone()));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitfall::ports::ChangeOp;
    use serde_json::json;

    fn commit(t: u64, db: &str, table: &str, rows: &[(&str, serde_json::Value)]) -> Line {
        Line {
            t,
            event: Event::DbCommit {
                db: db.into(),
                process: "test".into(),
                lsn: t,
                changes: rows
                    .iter()
                    .map(|(key, data)| Change {
                        lsn: t,
                        table: table.into(),
                        key: key.to_string(),
                        op: ChangeOp::Insert,
                        version: 1,
                        data: data.clone(),
                    })
                    .collect(),
            },
        }
    }

    fn transfer(t: u64, id: &str) -> Line {
        let made = TransferMade {
            transfer_id: id.into(),
            from: "a".into(),
            to: "b".into(),
            amount: 5,
            request_id: format!("r-{id}"),
            user_id: "teller-1".into(),
        };
        commit(t, BANK_DB, TRANSFERS_TABLE, &[(id, json!(made))])
    }

    fn booking(t: u64, id: &str) -> Line {
        commit(
            t,
            LEDGER_DB,
            ENTRIES,
            &[
                (
                    &format!("{id}-d{t}"),
                    json!({"transfer_id": id, "account": "a", "delta": -5}),
                ),
                (
                    &format!("{id}-c{t}"),
                    json!({"transfer_id": id, "account": "b", "delta": 5}),
                ),
            ],
        )
    }

    fn balances(t: u64, a: i64, b: i64) -> Line {
        commit(
            t,
            BANK_DB,
            ACCOUNTS,
            &[("a", json!({"balance": a})), ("b", json!({"balance": b}))],
        )
    }

    #[test]
    fn a_transfer_booked_once_is_clean() {
        let h = vec![balances(1, 10, 10), transfer(2, "t1"), booking(3, "t1")];
        assert!(booked_exactly_once(&h).is_empty());
    }

    #[test]
    fn a_transfer_booked_twice_or_never_is_caught() {
        let twice = vec![transfer(2, "t1"), booking(3, "t1"), booking(4, "t1")];
        let v = booked_exactly_once(&twice);
        assert_eq!(v.len(), 1);
        assert!(v[0].0.contains("2 debit(s) and 2 credit(s)"), "{}", v[0].0);
        assert_eq!(v[0].1, vec![0, 1, 1, 2, 2]);
        let never = vec![transfer(2, "t1")];
        assert!(booked_exactly_once(&never)[0].0.contains("never booked"));
        let phantom = vec![booking(3, "t9")];
        assert!(booked_exactly_once(&phantom)[0].0.contains("never made"));
    }

    #[test]
    fn money_moved_between_accounts_is_conserved() {
        let h = vec![balances(1, 10, 10), balances(2, 5, 15), booking(3, "t1")];
        assert!(money_conserved(&h).is_empty(), "{:?}", money_conserved(&h));
    }

    #[test]
    fn money_created_or_overdrawn_or_a_lopsided_booking_is_caught() {
        let created = vec![balances(1, 10, 10), balances(2, 10, 15)];
        assert!(money_conserved(&created)[0]
            .0
            .contains("held 20 in all, then 25"));
        let overdrawn = vec![balances(1, 10, 10), balances(2, -1, 21)];
        assert!(money_conserved(&overdrawn)[0].0.contains("went to -1"));
        let lopsided = vec![commit(
            3,
            LEDGER_DB,
            ENTRIES,
            &[(
                "e1",
                json!({"transfer_id": "t1", "account": "a", "delta": -5}),
            )],
        )];
        assert!(money_conserved(&lopsided)[0].0.contains("net to -5"));
    }
}
