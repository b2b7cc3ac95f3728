//! converges (liveness): after the faults heal, the system drains within the
//! scenario's bounded simulated time, and what it did is durably settled:
//! every group's last committed offset reaches past the last record it
//! handled, and every slot's confirmed position reaches its DB's last
//! commit (some seeds keep faults on to the end of the workload, so the last
//! commits and confirms can fail too; a drain that only sees nothing left
//! to handle would miss that).

use super::Finding;
use crate::history::compact::{Compact, Ev};
use crate::lookup::LookupMap;
use pitfall_ports::Lsn;
use std::collections::BTreeMap;

pub fn check(history: &Compact<'_>) -> Vec<Finding> {
    let mut found = drained(history);
    if found.is_empty() {
        found.extend(offsets_committed(history));
        found.extend(slots_confirmed(history));
    }
    found
}

/// Whether the drain ended with nothing pending.
fn drained(history: &Compact<'_>) -> Vec<Finding> {
    let drain = history
        .lines()
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, e)| match e.event {
            Ev::Drain { converged, pending } => Some((i, converged, pending)),
            _ => None,
        });
    match drain {
        None => vec![(
            "the history has no drain record: the run did not finish".into(),
            vec![],
        )],
        Some((_, true, _)) => vec![],
        Some((i, false, pending)) => vec![(
            format!(
                "did not converge after the faults healed: {}",
                pending.join("; ")
            ),
            vec![i],
        )],
    }
}

/// Per (group, topic, partition): the last record handled must be below the
/// last committed offset (Kafka commits the next offset to read).
fn offsets_committed(history: &Compact<'_>) -> Vec<Finding> {
    type Key<'h> = (&'h str, &'h str, u32);
    // Found by hash, once per consume and commit; only `handled` is
    // walked, and in key order.
    let mut handled: LookupMap<Key<'_>, (u64, usize)> = LookupMap::default();
    let mut committed: LookupMap<Key<'_>, (u64, usize)> = LookupMap::default();
    for (i, e) in history.lines().iter().enumerate() {
        match e.event {
            Ev::Consume {
                group,
                topic,
                partition,
                offset,
                ..
            } => {
                keep_highest(&mut handled, (group, topic, partition), offset, i);
            }
            Ev::OffsetCommit {
                group,
                topic,
                partition,
                offset,
                ..
            } => {
                committed.insert((group, topic, partition), (offset, i));
            }
            _ => {}
        }
    }
    let handled: BTreeMap<Key<'_>, (u64, usize)> = handled.into_iter().collect();
    handled
        .into_iter()
        .filter_map(|((group, topic, partition), (last, at))| {
            let commit = committed.get(&(group, topic, partition));
            match commit {
                Some((offset, _)) if *offset > last => None,
                Some((offset, c)) => Some((
                    format!(
                        "group {group} handled {topic}/{partition} up to offset {last}, but its last commit is {offset}: a restart would handle it again"
                    ),
                    vec![at, *c],
                )),
                None => Some((
                    format!(
                        "group {group} handled {topic}/{partition} up to offset {last}, and never committed an offset"
                    ),
                    vec![at],
                )),
            }
        })
        .collect()
}

/// Per (db, slot) that confirmed anything: its last confirm must reach the
/// DB's last commit.
fn slots_confirmed(history: &Compact<'_>) -> Vec<Finding> {
    let mut last_commit: LookupMap<&str, (Lsn, usize)> = LookupMap::default();
    let mut confirmed: LookupMap<(&str, &str), (Lsn, usize)> = LookupMap::default();
    for (i, e) in history.lines().iter().enumerate() {
        match e.event {
            Ev::DbCommit { db, lsn, .. } => keep_highest(&mut last_commit, db, lsn, i),
            Ev::SlotConfirm { db, slot, lsn } => keep_highest(&mut confirmed, (db, slot), lsn, i),
            _ => {}
        }
    }
    let confirmed: BTreeMap<(&str, &str), (Lsn, usize)> = confirmed.into_iter().collect();
    confirmed
        .into_iter()
        .filter_map(|((db, slot), (lsn, at))| {
            let (head, commit) = *last_commit.get(db)?;
            (lsn < head).then(|| {
                (
                    format!(
                        "slot {slot} of {db} is confirmed to {lsn}, short of the last commit {head}: a restarted connector would produce those changes again"
                    ),
                    vec![at, commit],
                )
            })
        })
        .collect()
}

/// Keep under `key` the highest `value` seen, with the history line
/// (`entry`) of its latest occurrence.
fn keep_highest<K: std::hash::Hash + Eq>(
    map: &mut LookupMap<K, (u64, usize)>,
    key: K,
    value: u64,
    entry: usize,
) {
    let kept = map.entry(key).or_insert((value, entry));
    if value >= kept.0 {
        *kept = (value, entry);
    }
}

#[cfg(test)]
mod tests {
    use crate::checkers::Finding;
    use crate::history::compact::with_entries;
    use crate::history::{Entry, Event};

    fn check(history: &[Entry]) -> Vec<Finding> {
        with_entries(history, super::check)
    }

    fn drain(t: u64, converged: bool, pending: &[&str]) -> Entry {
        Entry {
            t,
            event: Event::Drain {
                converged,
                pending: pending.iter().map(|s| s.to_string()).collect(),
            },
        }
    }

    #[test]
    fn holds_after_a_converged_drain() {
        assert!(check(&[drain(100, true, &[])]).is_empty());
    }

    #[test]
    fn catches_a_drain_that_left_work_pending_or_never_happened() {
        let v = check(&[drain(100, false, &["worker lag 3 on events/1"])]);
        assert_eq!(v.len(), 1);
        assert!(v[0].0.ends_with("worker lag 3 on events/1"), "{}", v[0].0);
        assert_eq!(check(&[]).len(), 1);
    }

    fn at(t: u64, event: Event) -> Entry {
        Entry { t, event }
    }

    fn consume(t: u64, offset: u64) -> Entry {
        at(
            t,
            Event::Consume {
                process: "worker".into(),
                group: "workers".into(),
                topic: "events".into(),
                partition: 1,
                offset,
                key: "k".into(),
            },
        )
    }

    fn commit(t: u64, offset: u64) -> Entry {
        at(
            t,
            Event::OffsetCommit {
                process: "worker".into(),
                group: "workers".into(),
                topic: "events".into(),
                partition: 1,
                offset,
            },
        )
    }

    #[test]
    fn a_group_whose_last_commit_is_missing_fails_and_the_complete_one_holds() {
        let complete = [
            consume(1, 0),
            consume(2, 1),
            commit(3, 1),
            consume(4, 2),
            commit(5, 3),
            drain(9, true, &[]),
        ];
        assert!(check(&complete).is_empty(), "{:?}", check(&complete));

        let last_commit_lost = [
            consume(1, 0),
            consume(2, 1),
            commit(3, 1),
            consume(4, 2),
            drain(9, true, &[]),
        ];
        let v = check(&last_commit_lost);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].0.contains("up to offset 2, but its last commit is 1"),
            "{}",
            v[0].0
        );
        assert_eq!(v[0].1, vec![3, 2]);

        let never = [consume(1, 0), drain(9, true, &[])];
        assert!(check(&never)[0].0.contains("never committed"));
    }

    fn db_commit(t: u64, lsn: u64) -> Entry {
        at(
            t,
            Event::DbCommit {
                db: "orders-db".into(),
                process: "orders".into(),
                lsn,
                changes: vec![],
            },
        )
    }

    fn confirm(t: u64, lsn: u64) -> Entry {
        at(
            t,
            Event::SlotConfirm {
                db: "orders-db".into(),
                slot: "orders_cdc".into(),
                lsn,
            },
        )
    }

    #[test]
    fn a_slot_whose_last_confirm_is_missing_fails_and_the_complete_one_holds() {
        let complete = [
            db_commit(1, 1),
            db_commit(2, 2),
            confirm(3, 1),
            db_commit(4, 3),
            confirm(5, 3),
            drain(9, true, &[]),
        ];
        assert!(check(&complete).is_empty(), "{:?}", check(&complete));

        let last_confirm_lost = [
            db_commit(1, 1),
            db_commit(2, 2),
            confirm(3, 1),
            db_commit(4, 3),
            drain(9, true, &[]),
        ];
        let v = check(&last_confirm_lost);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].0.contains(
                "slot orders_cdc of orders-db is confirmed to 1, short of the last commit 3"
            ),
            "{}",
            v[0].0
        );
    }
}
