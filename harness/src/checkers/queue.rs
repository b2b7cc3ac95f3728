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

use super::Finding;
use crate::history::compact::{Compact, Ev, Raw};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use crate::lookup::{LookupMap, LookupSet};

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

/// A topic and partition.
type Tp<'h> = (&'h str, u32);

/// An anomaly, its message and the history lines that show it.
type Found = (Anomaly, String, Vec<usize>);

/// The revision a record carries: a domain event's `revision`, or a change
/// envelope's `version`.
fn revision(value: Raw<'_>) -> Option<u64> {
    let [revision, version] = value.get_many(["revision", "version"]);
    revision.or(version)?.as_u64()
}

/// A record in the log: key, value, the value's canonical text (equal
/// values, equal texts), history entry.
type Logged<'h> = (&'h str, Raw<'h>, Cow<'h, str>, usize);

/// The log: (topic, partition) → offset → record.
type Log<'h> = BTreeMap<Tp<'h>, BTreeMap<u64, Logged<'h>>>;

/// Offsets per partition.
type Gaps<'h> = BTreeMap<Tp<'h>, BTreeSet<u64>>;

/// The records transactions aborted, as ((topic, partition), offset).
pub type Aborted<'h> = BTreeSet<(Tp<'h>, u64)>;

/// Per partition, the offsets no `read_committed` consumer is handed:
/// aborted records and transaction markers; and which of them are aborted
/// records.
fn transaction_gaps<'h>(history: &Compact<'h>) -> (Gaps<'h>, Aborted<'h>) {
    let mut gaps: Gaps = BTreeMap::new();
    let mut aborted = BTreeSet::new();
    for e in history.lines() {
        if let Ev::Gaps {
            topic,
            partition,
            offsets,
        } = e.event
        {
            gaps.entry((topic, partition)).or_default().extend(offsets);
            continue;
        }
        let Ev::TxnEnd {
            committed,
            records,
            markers,
            ..
        } = e.event
        else {
            continue;
        };
        let aborted_records = records.iter().filter(|_| !committed);
        for o in markers.iter().chain(aborted_records.clone()) {
            gaps.entry((o.topic, o.partition))
                .or_default()
                .insert(o.offset);
        }
        for o in aborted_records {
            aborted.insert(((o.topic, o.partition), o.offset));
        }
    }
    (gaps, aborted)
}

/// The records transactions aborted, as ((topic, partition), offset): never
/// read by a `read_committed` consumer.
pub fn aborted_records<'h>(history: &Compact<'h>) -> Aborted<'h> {
    transaction_gaps(history).1
}

/// Every anomaly in the history: (kind, message, evidence lines).
pub fn find(history: &Compact<'_>) -> Vec<Found> {
    let mut found = Vec::new();
    let (gaps, aborted) = transaction_gaps(history);
    let log = read_log(history, &aborted, &mut found);
    let consumed = read_polls(history, &log, &gaps, &mut found);
    unread(&log, &consumed, &mut found);
    let records = records(&log);
    let groups = copies(&records);
    duplicates(&records, &groups, &mut found);
    reordered(&records, &repeats(&records, &groups), &mut found);
    found
}

/// The log of committed (not aborted) appends, and every offset holding two
/// different values.
fn read_log<'h>(history: &Compact<'h>, aborted: &Aborted<'h>, found: &mut Vec<Found>) -> Log<'h> {
    // Found by hash while it is built (one string comparison a record,
    // not one per tree level), sorted once at the end.
    let mut log: LookupMap<Tp, BTreeMap<u64, Logged>> = LookupMap::default();
    let aborted: LookupSet<(Tp, u64)> = aborted.iter().copied().collect();
    for (i, e) in history.lines().iter().enumerate() {
        let Ev::Append {
            topic,
            partition,
            offset,
            key,
            value,
            ..
        } = e.event
        else {
            continue;
        };
        if aborted.contains(&((topic, partition), offset)) {
            continue;
        }
        let slot = log.entry((topic, partition)).or_default();
        let text = value.text();
        match slot.entry(offset) {
            // Equal texts are equal values; unequal ones are compared as
            // values (`-0.0` and `0.0` differ as text only).
            Entry::Occupied(first) => {
                let (_, v, t, j) = first.get();
                if *t != text && v.value() != value.value() {
                    found.push((
                        Anomaly::InconsistentOffsets,
                        format!("{topic}/{partition}@{offset} holds two values"),
                        vec![*j, i],
                    ));
                }
            }
            Entry::Vacant(slot) => {
                slot.insert((key, value, text, i));
            }
        }
    }
    log.into_iter().collect()
}

/// What consumers read, per partition (sorted, distinct), and how each
/// process moved through a partition: a wrong key, going back, or skipping.
fn read_polls<'h>(
    history: &Compact<'h>,
    log: &Log<'h>,
    gaps: &Gaps<'h>,
    found: &mut Vec<Found>,
) -> BTreeMap<Tp<'h>, Vec<u64>> {
    let by_partition: LookupMap<Tp, &BTreeMap<u64, Logged>> =
        log.iter().map(|(tp, records)| (*tp, records)).collect();
    let mut consumed: LookupMap<Tp, Vec<u64>> = LookupMap::default();
    // Per process, per partition: the last offset it read there, and where.
    let mut position: LookupMap<&str, LookupMap<Tp, (u64, usize)>> = LookupMap::default();
    for (i, e) in history.lines().iter().enumerate() {
        match e.event {
            // A member resets to the committed offsets when it (re)joins.
            Ev::Assigned { process, .. } => {
                position.remove(process);
            }
            Ev::Fault { kind, target, .. } if kind.starts_with("crash") => {
                let host = target.split(' ').next().unwrap_or_default();
                position.remove(host);
            }
            Ev::Rewind {
                topic, partition, ..
            } => {
                for at in position.values_mut() {
                    at.remove(&(topic, partition));
                }
            }
            Ev::Consume {
                process,
                topic,
                partition,
                offset,
                key,
                ..
            } => {
                let tp = (topic, partition);
                consumed.entry(tp).or_default().push(offset);
                if let Some((k, _, _, j)) = by_partition.get(&tp).and_then(|l| l.get(&offset)) {
                    if *k != key {
                        found.push((
                            Anomaly::InconsistentOffsets,
                            format!("{process} read key {key} at {topic}/{partition}@{offset}, which holds key {k}"),
                            vec![*j, i],
                        ));
                    }
                }
                let last = position.entry(process).or_default().insert(tp, (offset, i));
                if let Some(step) = poll_step(process, tp, offset, i, last, gaps) {
                    found.push(step);
                }
            }
            _ => {}
        }
    }
    // Sorted by partition, through a sorted map: nothing iterates the
    // lookup map into the findings.
    let mut sorted = BTreeMap::new();
    for (tp, mut offsets) in consumed {
        offsets.sort_unstable();
        offsets.dedup();
        sorted.insert(tp, offsets);
    }
    sorted
}

/// A poll at `offset` (entry `i`) after the process's last one in the
/// partition: going back, or jumping over offsets that are not gaps.
fn poll_step(
    process: &str,
    (topic, partition): Tp<'_>,
    offset: u64,
    i: usize,
    last: Option<(u64, usize)>,
    gaps: &Gaps<'_>,
) -> Option<Found> {
    let (last, j) = last?;
    let stepped_over = || {
        let gap = gaps.get(&(topic, partition));
        (last + 1..offset).all(|o| gap.is_some_and(|g| g.contains(&o)))
    };
    if offset <= last {
        Some((
            Anomaly::NonmonotonicPoll,
            format!("{process} read {topic}/{partition}@{offset} after @{last} with no reassignment, crash or rewind between"),
            vec![j, i],
        ))
    } else if offset > last + 1 && !stepped_over() {
        Some((
            Anomaly::PollSkip,
            format!("{process} jumped from {topic}/{partition}@{last} to @{offset}"),
            vec![j, i],
        ))
    } else {
        None
    }
}

/// Records nobody read: lost below the highest offset read, else unseen.
fn unread(log: &Log<'_>, consumed: &BTreeMap<Tp<'_>, Vec<u64>>, found: &mut Vec<Found>) {
    for (&(topic, partition), records) in log {
        let seen = consumed.get(&(topic, partition));
        let highest = seen.and_then(|s| s.last().copied());
        for (offset, (key, _, _, i)) in records {
            if seen.is_some_and(|s| s.binary_search(offset).is_ok()) {
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
}

/// A record of the log, in log order.
struct Record<'l, 'h> {
    topic: &'h str,
    partition: u32,
    offset: u64,
    logged: &'l Logged<'h>,
}

/// The log's records, in log order: by topic, partition, offset.
fn records<'l, 'h>(log: &'l Log<'h>) -> Vec<Record<'l, 'h>> {
    let mut out = Vec::new();
    for (&(topic, partition), records) in log {
        out.extend(records.iter().map(|(offset, logged)| Record {
            topic,
            partition,
            offset: *offset,
            logged,
        }));
    }
    out
}

/// The groups of two or more records with one value on one topic (each
/// group's records in log order), by (topic, value text). Each value's
/// text is hashed once (XXH3, which reads long texts several times faster
/// than FxHash); records that share a hash are compared as text.
fn copies(records: &[Record<'_, '_>]) -> Vec<Vec<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < records.len() {
        let topic = records[start].topic;
        let end = start + records[start..].partition_point(|r| r.topic == topic);
        groups.extend(copies_in_topic(records, start..end));
        start = end;
    }
    groups
}

/// [`copies`] within one topic's records.
fn copies_in_topic(records: &[Record<'_, '_>], range: std::ops::Range<usize>) -> Vec<Vec<usize>> {
    let text = |k: usize| records[k].logged.2.as_ref();
    let mut by_hash: Vec<(u64, usize)> = range
        .map(|k| (twox_hash::XxHash3_64::oneshot(text(k).as_bytes()), k))
        .collect();
    by_hash.sort_unstable();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for run in by_hash
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|run| run.len() > 1)
    {
        let mut same: Vec<Vec<usize>> = Vec::new();
        for &(_, k) in run {
            match same.iter_mut().find(|g| text(g[0]) == text(k)) {
                Some(group) => group.push(k),
                None => same.push(vec![k]),
            }
        }
        groups.extend(same.into_iter().filter(|g| g.len() > 1));
    }
    groups.sort_unstable_by(|a, b| text(a[0]).cmp(text(b[0])));
    groups
}

/// The same value at several offsets of a topic, in the order of (topic,
/// value text).
fn duplicates(records: &[Record<'_, '_>], groups: &[Vec<usize>], found: &mut Vec<Found>) {
    for group in groups {
        let copies: Vec<&Record> = group.iter().map(|k| &records[*k]).collect();
        let at: Vec<String> = copies
            .iter()
            .map(|r| format!("{}@{}", r.partition, r.offset))
            .collect();
        found.push((
            Anomaly::Duplicate,
            format!(
                "one value at {} offsets of {}: {}",
                copies.len(),
                copies[0].topic,
                at.join(", ")
            ),
            copies.iter().map(|r| r.logged.3).collect(),
        ));
    }
}

/// Which records repeat a value already earlier in their partition.
fn repeats(records: &[Record<'_, '_>], groups: &[Vec<usize>]) -> Vec<bool> {
    let mut repeat = vec![false; records.len()];
    for group in groups {
        let mut partitions = BTreeSet::new();
        for &k in group {
            repeat[k] = !partitions.insert(records[k].partition);
        }
    }
    repeat
}

/// Per key, revisions must not go back along the log. A copy of a value
/// already in the partition (a replay, as after a CDC connector restarts)
/// is a duplicate, not a reordering: only first copies count here.
fn reordered(records: &[Record<'_, '_>], repeat: &[bool], found: &mut Vec<Found>) {
    let mut highest: LookupMap<&str, (u64, u64, usize)> = LookupMap::default();
    for (k, r) in records.iter().enumerate() {
        if k > 0 && (records[k - 1].topic, records[k - 1].partition) != (r.topic, r.partition) {
            highest.clear();
        }
        let (key, value, _, i) = r.logged;
        if repeat[k] {
            continue;
        }
        let Some(rev) = revision(*value) else {
            continue;
        };
        let (topic, partition, offset) = (r.topic, r.partition, r.offset);
        match highest.get(key) {
            Some((h, o, j)) if rev < *h => found.push((
                Anomaly::NonmonotonicSend,
                format!("key {key}: revision {rev} at {topic}/{partition}@{offset} after revision {h} at @{o}"),
                vec![*j, *i],
            )),
            Some((h, _, _)) if rev == *h => {}
            _ => {
                highest.insert(key, (rev, offset, *i));
            }
        }
    }
}

/// The anomalies of the history that are not `allowed`.
pub fn check(history: &Compact<'_>, allowed: &[Anomaly]) -> Vec<Finding> {
    find(history)
        .into_iter()
        .filter(|(a, _, _)| !allowed.contains(a))
        .map(|(a, message, events)| (format!("{}: {message}", a.name()), events))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Anomaly;
    use crate::checkers::Finding;
    use crate::history::compact::with_entries;
    use crate::history::{Entry, Event, FaultAction};
    use serde_json::{json, Value};
    use std::collections::BTreeMap;

    fn find(h: &[Entry]) -> Vec<(Anomaly, String, Vec<usize>)> {
        with_entries(h, super::find)
    }

    fn check(h: &[Entry], allowed: &[Anomaly]) -> Vec<Finding> {
        with_entries(h, |c| super::check(c, allowed))
    }

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
