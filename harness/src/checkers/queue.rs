//! queue: the anomalies of Jepsen's Kafka "queue" workload, over the broker
//! part of the history (appends, consumed records, members' (re)assignments,
//! crashes and injected rewinds):
//!
//! - **lost-write**: an appended record below the highest consumed offset of
//!   its partition that no consumer saw;
//! - **unseen**: appended, never consumed by the end of the drain;
//! - **duplicate**: the same value at more than one offset;
//! - **inconsistent-offsets**: one offset holding several values (in the log,
//!   or between the log and what a consumer read);
//! - **nonmonotonic-send**: for one key, a lower revision after a higher one
//!   in the log;
//! - **nonmonotonic-poll**: a consumer going back within a partition with no
//!   (re)assignment, crash or rewind in between;
//! - **poll-skip**: a consumer jumping over offsets with no (re)assignment,
//!   crash or rewind in between.
//!
//! Transactions: a record its transaction aborted was never in the log a
//! `read_committed` consumer reads, so it is left out of every check, and a
//! consumer stepping over aborted records and transaction markers is not
//! skipping.
//!
//! Which anomalies a run may show is the system's call
//! ([`crate::system::System::queue_allowed`], from the variants the run
//! header records); every other anomaly is a violation.

use crate::history::{Entry, Event};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anomaly {
    LostWrite,
    Unseen,
    Duplicate,
    InconsistentOffsets,
    NonmonotonicSend,
    NonmonotonicPoll,
    PollSkip,
}

impl Anomaly {
    pub fn name(self) -> &'static str {
        match self {
            Anomaly::LostWrite => "lost-write",
            Anomaly::Unseen => "unseen",
            Anomaly::Duplicate => "duplicate",
            Anomaly::InconsistentOffsets => "inconsistent-offsets",
            Anomaly::NonmonotonicSend => "nonmonotonic-send",
            Anomaly::NonmonotonicPoll => "nonmonotonic-poll",
            Anomaly::PollSkip => "poll-skip",
        }
    }
}

type Tp = (String, u32);

/// The revision a record carries: a domain event's `revision`, or a change
/// envelope's `version`.
fn revision(value: &Value) -> Option<u64> {
    value
        .get("revision")
        .or_else(|| value.get("version"))
        .and_then(Value::as_u64)
}

/// Every anomaly in the history: (kind, message, evidence lines).
/// A record in the log: key, value, the value's text, history entry.
type Logged<'h> = (&'h str, &'h Value, String, usize);

/// Offsets per partition.
type Gaps = BTreeMap<Tp, BTreeSet<u64>>;

/// Per partition, the offsets no `read_committed` consumer is handed:
/// aborted records and transaction markers; and which of them are aborted
/// records.
fn transaction_gaps(history: &[Entry]) -> (Gaps, BTreeSet<(Tp, u64)>) {
    let mut gaps: Gaps = BTreeMap::new();
    let mut aborted = BTreeSet::new();
    for e in history {
        if let Event::Gaps {
            topic,
            partition,
            offsets,
        } = &e.event
        {
            let gap = gaps.entry((topic.clone(), *partition)).or_default();
            gap.extend(offsets);
            continue;
        }
        let Event::TxnEnd {
            committed,
            records,
            markers,
            ..
        } = &e.event
        else {
            continue;
        };
        let aborted_records = records.iter().filter(|_| !committed);
        for o in markers.iter().chain(aborted_records.clone()) {
            gaps.entry((o.topic.clone(), o.partition))
                .or_default()
                .insert(o.offset);
        }
        for o in aborted_records {
            aborted.insert(((o.topic.clone(), o.partition), o.offset));
        }
    }
    (gaps, aborted)
}

/// The records transactions aborted, as ((topic, partition), offset): never
/// read by a `read_committed` consumer.
pub fn aborted_records(history: &[Entry]) -> BTreeSet<((String, u32), u64)> {
    transaction_gaps(history).1
}

pub fn find(history: &[Entry]) -> Vec<(Anomaly, String, Vec<usize>)> {
    let mut found = Vec::new();
    let (gaps, aborted) = transaction_gaps(history);
    // The log: (topic, partition) → offset → (key, value, entry).
    let mut log: BTreeMap<Tp, BTreeMap<u64, Logged>> = BTreeMap::new();
    for (i, e) in history.iter().enumerate() {
        if let Event::Append {
            topic,
            partition,
            offset,
            key,
            value,
            ..
        } = &e.event
        {
            if aborted.contains(&((topic.clone(), *partition), *offset)) {
                continue;
            }
            let slot = log.entry((topic.clone(), *partition)).or_default();
            match slot.get(offset) {
                Some((_, v, _, j)) if *v != value => found.push((
                    Anomaly::InconsistentOffsets,
                    format!("{topic}/{partition}@{offset} holds two values"),
                    vec![*j, i],
                )),
                Some(_) => {}
                None => {
                    // Serialized once: values are compared by their text
                    // (duplicates, replays) below.
                    slot.insert(*offset, (key, value, value.to_string(), i));
                }
            }
        }
    }

    // What consumers read, and how each process moved through a partition.
    let mut consumed: BTreeMap<Tp, BTreeSet<u64>> = BTreeMap::new();
    let mut position: BTreeMap<(String, Tp), (u64, usize)> = BTreeMap::new();
    for (i, e) in history.iter().enumerate() {
        match &e.event {
            // A member resets to the committed offsets when it (re)joins.
            Event::Assigned { process, .. } => position.retain(|(p, _), _| p != process),
            Event::Fault { kind, target, .. } if kind.starts_with("crash") => {
                let host = target.split(' ').next().unwrap_or_default();
                position.retain(|(p, _), _| p != host);
            }
            Event::Rewind {
                topic, partition, ..
            } => {
                position.retain(|(_, tp), _| *tp != (topic.clone(), *partition));
            }
            Event::Consume {
                process,
                topic,
                partition,
                offset,
                key,
                ..
            } => {
                let tp = (topic.clone(), *partition);
                consumed.entry(tp.clone()).or_default().insert(*offset);
                if let Some((k, _, _, j)) = log.get(&tp).and_then(|l| l.get(offset)) {
                    if *k != key {
                        found.push((
                            Anomaly::InconsistentOffsets,
                            format!("{process} read key {key} at {topic}/{partition}@{offset}, which holds key {k}"),
                            vec![*j, i],
                        ));
                    }
                }
                let stepped_over = |last: u64| {
                    let gap = gaps.get(&tp);
                    (last + 1..*offset).all(|o| gap.is_some_and(|g| g.contains(&o)))
                };
                if let Some((last, j)) =
                    position.insert((process.clone(), tp.clone()), (*offset, i))
                {
                    if *offset <= last {
                        found.push((
                            Anomaly::NonmonotonicPoll,
                            format!("{process} read {topic}/{partition}@{offset} after @{last} with no reassignment, crash or rewind between"),
                            vec![j, i],
                        ));
                    } else if *offset > last + 1 && !stepped_over(last) {
                        found.push((
                            Anomaly::PollSkip,
                            format!(
                                "{process} jumped from {topic}/{partition}@{last} to @{offset}"
                            ),
                            vec![j, i],
                        ));
                    }
                }
            }
            _ => {}
        }
    }

    for ((topic, partition), records) in &log {
        let seen = consumed.get(&(topic.clone(), *partition));
        let highest = seen.and_then(|s| s.last().copied());
        for (offset, (key, _, _, i)) in records {
            if seen.is_some_and(|s| s.contains(offset)) {
                continue;
            }
            match highest {
                Some(h) if *offset < h => found.push((
                    Anomaly::LostWrite,
                    format!(
                        "{topic}/{partition}@{offset} (key {key}) was never read, though @{h} was"
                    ),
                    vec![*i],
                )),
                _ => found.push((
                    Anomaly::Unseen,
                    format!("{topic}/{partition}@{offset} (key {key}) was never read"),
                    vec![*i],
                )),
            }
        }
    }

    // The same value at several offsets.
    // (topic, value) → (partition, offset, entry) of every copy.
    type Copies = Vec<(u32, u64, usize)>;
    let mut by_value: BTreeMap<(&str, &str), Copies> = BTreeMap::new();
    for ((topic, partition), records) in &log {
        for (offset, (_, _, text, i)) in records {
            by_value
                .entry((topic.as_str(), text.as_str()))
                .or_default()
                .push((*partition, *offset, *i));
        }
    }
    for ((topic, _), copies) in by_value.into_iter().filter(|(_, c)| c.len() > 1) {
        let at: Vec<String> = copies.iter().map(|(p, o, _)| format!("{p}@{o}")).collect();
        found.push((
            Anomaly::Duplicate,
            format!(
                "one value at {} offsets of {topic}: {}",
                copies.len(),
                at.join(", ")
            ),
            copies.iter().map(|(_, _, i)| *i).collect(),
        ));
    }

    // Per key, revisions must not go back along the log. A copy of a value
    // already in the partition (a replay, as after a CDC connector restarts)
    // is a duplicate, not a reordering: only first copies count here.
    for ((topic, partition), records) in &log {
        let mut highest: BTreeMap<&str, (u64, u64, usize)> = BTreeMap::new();
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        for (offset, (key, value, text, i)) in records {
            if !seen.insert(text.as_str()) {
                continue;
            }
            let Some(rev) = revision(value) else { continue };
            match highest.get(key) {
                Some((r, o, j)) if rev < *r => found.push((
                    Anomaly::NonmonotonicSend,
                    format!("key {key}: revision {rev} at {topic}/{partition}@{offset} after revision {r} at @{o}"),
                    vec![*j, *i],
                )),
                Some((r, _, _)) if rev == *r => {}
                _ => {
                    highest.insert(key, (rev, *offset, *i));
                }
            }
        }
    }
    found
}

/// The anomalies of the history that are not `allowed`.
pub fn check(history: &[Entry], allowed: &[Anomaly]) -> Vec<(String, Vec<usize>)> {
    find(history)
        .into_iter()
        .filter(|(a, _, _)| !allowed.contains(a))
        .map(|(a, message, events)| (format!("{}: {message}", a.name()), events))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::FaultAction;
    use serde_json::json;

    fn at(t: u64, event: Event) -> Entry {
        Entry { t, event }
    }

    fn run(producer: &str) -> Entry {
        at(
            0,
            Event::Run {
                scenario: "s".into(),
                seed: 1,
                mode: "sim".into(),
                system: "toy".into(),
                variants: BTreeMap::from([("producer".into(), producer.into())]),
            },
        )
    }

    fn append(offset: u64, key: &str, value: Value) -> Entry {
        at(
            offset,
            Event::Append {
                topic: "t".into(),
                partition: 0,
                offset,
                key: key.into(),
                headers: vec![],
                producer: "p".into(),
                value,
                wire_bytes: None,
            },
        )
    }

    fn consume(process: &str, offset: u64, key: &str) -> Entry {
        at(
            100 + offset,
            Event::Consume {
                process: process.into(),
                group: "g".into(),
                topic: "t".into(),
                partition: 0,
                offset,
                key: key.into(),
            },
        )
    }

    fn kinds(h: &[Entry]) -> Vec<Anomaly> {
        find(h).into_iter().map(|(a, _, _)| a).collect()
    }

    #[test]
    fn a_clean_queue_shows_nothing() {
        let h = vec![
            run("cdc"),
            append(0, "a", json!({"n": 0, "revision": 1})),
            append(1, "a", json!({"n": 1, "revision": 2})),
            append(2, "b", json!({"n": 2})),
            consume("c1", 0, "a"),
            consume("c1", 1, "a"),
            consume("c1", 2, "b"),
        ];
        assert_eq!(kinds(&h), vec![]);
        assert!(check(&h, &[]).is_empty());
    }

    #[test]
    fn finds_lost_unseen_and_skipped_records() {
        let h = vec![
            run("cdc"),
            append(0, "a", json!(0)),
            append(1, "b", json!(1)),
            append(2, "c", json!(2)),
            append(3, "d", json!(3)),
            consume("c1", 0, "a"),
            consume("c1", 2, "c"),
        ];
        assert_eq!(
            kinds(&h),
            vec![Anomaly::PollSkip, Anomaly::LostWrite, Anomaly::Unseen]
        );
    }

    #[test]
    fn finds_duplicates_and_inconsistent_offsets() {
        let h = vec![
            run("cdc"),
            append(0, "a", json!({"x": 1})),
            append(1, "a", json!({"x": 1})),
            append(1, "z", json!({"x": 9})),
            consume("c1", 0, "a"),
            consume("c1", 1, "q"),
        ];
        assert_eq!(
            kinds(&h),
            vec![
                Anomaly::InconsistentOffsets,
                Anomaly::InconsistentOffsets,
                Anomaly::Duplicate
            ]
        );
    }

    #[test]
    fn going_back_is_fine_only_across_a_reassignment_crash_or_rewind() {
        let back = vec![
            run("cdc"),
            append(0, "a", json!(0)),
            append(1, "b", json!(1)),
            consume("c1", 0, "a"),
            consume("c1", 1, "b"),
            consume("c1", 0, "a"),
        ];
        assert_eq!(kinds(&back), vec![Anomaly::NonmonotonicPoll]);
        let group_level = Event::Rebalance {
            group: "g".into(),
            generation: 2,
            assignment: BTreeMap::new(),
        };
        let mut h = back.clone();
        h.insert(5, at(150, group_level));
        assert_eq!(
            kinds(&h),
            vec![Anomaly::NonmonotonicPoll],
            "the member had not rejoined yet"
        );
        for boundary in [
            Event::Assigned {
                process: "c1".into(),
                group: "g".into(),
                generation: 2,
                partitions: vec!["t/0".into()],
            },
            Event::Fault {
                action: FaultAction::Start,
                kind: "crash-workers".into(),
                target: "c1".into(),
            },
            Event::Rewind {
                group: "g".into(),
                topic: "t".into(),
                partition: 0,
                from: 2,
                to: 0,
            },
        ] {
            let mut h = back.clone();
            h.insert(5, at(150, boundary));
            assert_eq!(kinds(&h), vec![], "{:?}", h[5]);
        }
    }

    #[test]
    fn revisions_going_back_are_violations_unless_allowed() {
        let h = vec![
            run("cdc"),
            append(0, "k", json!({"revision": 2})),
            append(1, "k", json!({"revision": 1})),
            consume("c1", 0, "k"),
            consume("c1", 1, "k"),
        ];
        assert_eq!(kinds(&h), vec![Anomaly::NonmonotonicSend]);
        assert_eq!(check(&h, &[Anomaly::Duplicate]).len(), 1);
        assert!(check(&h, &[Anomaly::NonmonotonicSend]).is_empty());
    }

    #[test]
    fn a_replayed_prefix_is_a_duplicate_not_a_reordering() {
        // A CDC connector that restarts before confirming re-produces
        // revisions 1 and 2 after the first copies.
        let h = vec![
            run("cdc"),
            append(0, "k", json!({"revision": 1})),
            append(1, "k", json!({"revision": 2})),
            append(2, "k", json!({"revision": 1})),
            append(3, "k", json!({"revision": 2})),
            consume("c1", 0, "k"),
            consume("c1", 1, "k"),
            consume("c1", 2, "k"),
            consume("c1", 3, "k"),
        ];
        assert_eq!(kinds(&h), vec![Anomaly::Duplicate, Anomaly::Duplicate]);
        let allowed = [Anomaly::Duplicate];
        assert!(check(&h, &allowed).is_empty(), "{:?}", check(&h, &allowed));
    }

    fn txn_end(committed: bool, records: &[u64], marker: u64) -> Entry {
        let tpo = |offset: u64| pitfall_ports::TopicPartitionOffset {
            topic: "t".into(),
            partition: 0,
            offset,
        };
        at(
            50 + marker,
            Event::TxnEnd {
                transactional_id: "tx".into(),
                process: "p".into(),
                committed,
                records: records.iter().map(|o| tpo(*o)).collect(),
                markers: vec![tpo(marker)],
            },
        )
    }

    #[test]
    fn an_aborted_transaction_is_out_of_the_log_and_stepping_over_it_is_no_skip() {
        // The aborted attempt at 0 and its marker at 1; the committed retry
        // of the same value at 2 and its marker at 3; a plain record at 4.
        let h = vec![
            run("cdc"),
            append(0, "a", json!({"n": 0})),
            txn_end(false, &[0], 1),
            append(2, "a", json!({"n": 0})),
            txn_end(true, &[2], 3),
            append(4, "b", json!({"n": 4})),
            consume("c1", 2, "a"),
            consume("c1", 4, "b"),
        ];
        assert_eq!(kinds(&h), vec![]);
    }

    #[test]
    fn a_committed_transaction_is_still_checked() {
        // The retry committed twice (no abort between): a duplicate; and a
        // jump over a committed record is a skip.
        let h = vec![
            run("cdc"),
            append(0, "a", json!({"n": 0})),
            append(1, "a", json!({"n": 0})),
            txn_end(true, &[0, 1], 2),
            append(3, "b", json!({"n": 3})),
            consume("c1", 0, "a"),
            consume("c1", 3, "b"),
        ];
        assert_eq!(
            kinds(&h),
            vec![Anomaly::PollSkip, Anomaly::LostWrite, Anomaly::Duplicate]
        );
    }

    #[test]
    fn gaps_read_back_in_real_mode_are_stepped_over() {
        // Real mode knows the offsets a read_committed reader never got
        // (here a marker at 1) only from reading the log back.
        let gaps = at(
            0,
            Event::Gaps {
                topic: "t".into(),
                partition: 0,
                offsets: vec![1],
            },
        );
        let h = vec![
            run("cdc"),
            gaps.clone(),
            append(0, "a", json!({"n": 0})),
            append(2, "b", json!({"n": 2})),
            consume("c1", 0, "a"),
            consume("c1", 2, "b"),
        ];
        assert_eq!(kinds(&h), vec![]);
        let without: Vec<Entry> = h.into_iter().filter(|e| e.event != gaps.event).collect();
        assert_eq!(kinds(&without), vec![Anomaly::PollSkip]);
    }
}
