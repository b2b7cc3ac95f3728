//! The history of one run: every client-visible operation (invoke and its
//! ok/fail/info outcome) and every fact the checkers need — DB commits with
//! their row changes, broker appends, consumed records, offset commits,
//! rebalances, object-store writes, faults and phases. Checkers are pure
//! functions of it. It is exported as JSON Lines, one [`Entry`] per line.

pub mod compact;
pub mod file;

use crate::lookup::LookupMap;
use pitfall_ports::{Change, Lsn};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One line of the history: simulated time in milliseconds and the event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub t: u64,
    #[serde(flatten)]
    pub event: Event,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    Start,
    Stop,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The first line: what ran.
    Run {
        scenario: String,
        seed: u64,
        mode: String,
        /// The system under test (histories from before systems had names
        /// leave it out: the default system).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        system: String,
        /// Component → variant (`producer`, `consumer`), so checkers and
        /// `pitfall check` know what the history was allowed to show.
        #[serde(default)]
        variants: BTreeMap<String, String>,
    },
    /// A phase boundary: `chaos`, `heal`, `drained`.
    Phase {
        phase: String,
    },
    Fault {
        action: FaultAction,
        kind: String,
        target: String,
    },
    /// A client invoked an operation.
    Invoke {
        process: String,
        op: String,
        request_id: String,
        attempt: u32,
        value: Value,
    },
    /// The operation definitely happened. A read carries what it returned.
    Ok {
        process: String,
        op: String,
        request_id: String,
        attempt: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<Value>,
    },
    /// The operation definitely did not happen (the service said so).
    Fail {
        process: String,
        op: String,
        request_id: String,
        attempt: u32,
        error: String,
    },
    /// The outcome is unknown (timeout, lost reply, indeterminate error).
    Info {
        process: String,
        op: String,
        request_id: String,
        attempt: u32,
        error: String,
    },
    /// A DB transaction committed, with its row changes.
    DbCommit {
        db: String,
        process: String,
        lsn: Lsn,
        changes: Vec<Change>,
    },
    /// The broker appended a record.
    Append {
        topic: String,
        partition: u32,
        offset: u64,
        key: String,
        headers: Vec<(String, String)>,
        producer: String,
        value: Value,
        /// The record's size on the wire when its producer compressed the
        /// batch (Kafka's `compression.type`): what the broker's size limit
        /// was checked against.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wire_bytes: Option<u64>,
    },
    /// A consumer handed a record to its application.
    Consume {
        process: String,
        group: String,
        topic: String,
        partition: u32,
        offset: u64,
        key: String,
    },
    /// The broker accepted a group's offset commit.
    OffsetCommit {
        process: String,
        group: String,
        topic: String,
        partition: u32,
        offset: u64,
    },
    /// A group member (re)joined and took these partitions, resetting its
    /// positions to the committed offsets.
    Assigned {
        process: String,
        group: String,
        generation: u64,
        partitions: Vec<String>,
    },
    /// The broker served a group member from `to`, behind the `from` it asked
    /// for (an injected redelivery).
    Rewind {
        group: String,
        topic: String,
        partition: u32,
        from: u64,
        to: u64,
    },
    /// A group changed generation; member → assigned "topic/partition"s.
    Rebalance {
        group: String,
        generation: u64,
        assignment: BTreeMap<String, Vec<String>>,
    },
    ObjectPut {
        process: String,
        key: String,
        size: usize,
    },
    ObjectDelete {
        process: String,
        key: String,
    },
    /// A get answered by the object store: whether the object was there.
    ObjectGet {
        process: String,
        key: String,
        found: bool,
    },
    /// A transaction ended: its records (offsets appended within it) became
    /// visible (`committed`) or were aborted, and a marker was written into
    /// each of its partitions at `markers`. Offsets it committed are
    /// `OffsetCommit`s just before.
    TxnEnd {
        transactional_id: String,
        process: String,
        committed: bool,
        records: Vec<pitfall_ports::TopicPartitionOffset>,
        markers: Vec<pitfall_ports::TopicPartitionOffset>,
    },
    /// Offsets of a partition that a `read_committed` reader never gets
    /// (transaction markers and aborted records), as real mode reads the
    /// log back after the drain.
    Gaps {
        topic: String,
        partition: u32,
        offsets: Vec<u64>,
    },
    /// A replication slot's confirmed position moved to `lsn`: the change
    /// feed may forget everything up to it.
    SlotConfirm {
        db: String,
        slot: String,
        lsn: Lsn,
    },
    /// Something interesting happened (a "sometimes" event, see
    /// [`crate::coverage`]): recorded once per process and name.
    Coverage {
        process: String,
        name: String,
    },
    /// The end of the drain: whether the system converged, and if not, what
    /// was still pending.
    Drain {
        converged: bool,
        pending: Vec<String>,
    },
}

/// A record value as the history shows it: parsed JSON when it is JSON and
/// small, otherwise its size and BLAKE3 digest (so equal values compare equal and
/// different ones do not).
///
/// A view of generated content is summarized without making its bytes
/// when its digest is known ([`pitfall_ports::Blob::digest`]), with the same summary.
pub fn value_repr(value: &pitfall_ports::Blob) -> Value {
    use pitfall_ports::digest::{summary, HISTORY_INLINE_LIMIT};
    if value.len() <= HISTORY_INLINE_LIMIT {
        if let Ok(v) = serde_json::from_slice::<Value>(&value.bytes()) {
            return v;
        }
    }
    summary(value.len(), value.digest())
}

/// Where event times come from: the simulation runner sets them before each
/// step; in real mode they are milliseconds since the run started.
#[derive(Clone)]
enum Clock {
    Manual(Arc<AtomicU64>),
    Since(tokio::time::Instant),
}

/// The recorder shared by every host of one run. Events are appended in the
/// order the (deterministic) simulation produces them.
#[derive(Clone)]
pub struct History {
    entries: Arc<Mutex<Vec<Entry>>>,
    /// The (process, name) coverage events already recorded.
    marked: Arc<Mutex<BTreeSet<(String, String)>>>,
    clock: Clock,
}

impl Default for History {
    fn default() -> Self {
        History {
            entries: Arc::default(),
            marked: Arc::default(),
            clock: Clock::Manual(Arc::default()),
        }
    }
}

impl History {
    /// A history whose clock the simulation runner sets.
    pub fn new() -> Self {
        Self::default()
    }

    /// A history stamped with time elapsed since now (real mode).
    pub fn since_now() -> Self {
        History {
            entries: Arc::default(),
            marked: Arc::default(),
            clock: Clock::Since(tokio::time::Instant::now()),
        }
    }

    /// Set the time stamped on events from now on (the simulation runner
    /// does this each step). No effect on a real-time history.
    pub fn set_now_ms(&self, t: u64) {
        if let Clock::Manual(c) = &self.clock {
            c.store(t, Ordering::Relaxed);
        }
    }

    pub fn now_ms(&self) -> u64 {
        match &self.clock {
            Clock::Manual(c) => c.load(Ordering::Relaxed),
            Clock::Since(start) => start.elapsed().as_millis() as u64,
        }
    }

    pub fn record(&self, event: Event) {
        self.record_at(self.now_ms(), event);
    }

    /// Record an event that happened at `t` (facts collected after the fact,
    /// such as a real broker's log); see [`History::sorted_entries`].
    pub fn record_at(&self, t: u64, event: Event) {
        self.entries.lock().unwrap().push(Entry { t, event });
    }

    /// Record the coverage event `name` of `process` the first time it
    /// happens in this run; later ones add nothing (the report counts seeds
    /// that hit an event, not how often).
    pub fn mark(&self, process: &str, name: &str) {
        let first = self
            .marked
            .lock()
            .unwrap()
            .insert((process.to_string(), name.to_string()));
        if first {
            self.record(Event::Coverage {
                process: process.to_string(),
                name: name.to_string(),
            });
        }
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.entries.lock().unwrap().clone()
    }

    /// The entries in time order; events with equal times keep the order
    /// they were recorded in.
    pub fn sorted_entries(&self) -> Vec<Entry> {
        let mut entries = self.entries();
        entries.sort_by_key(|e| e.t);
        entries
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Serialize entries as JSON Lines.
pub fn to_jsonl(entries: &[Entry]) -> String {
    let mut out = String::new();
    for e in entries {
        out.push_str(&serde_json::to_string(e).expect("history entries serialize"));
        out.push('\n');
    }
    out
}

/// A malformed history line.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}:{line}: {message}")]
pub struct ParseError {
    pub source_name: String,
    pub line: usize,
    pub message: String,
}

/// Parse JSON Lines; `source_name` names the file in errors.
pub fn parse_jsonl(text: &str, source_name: &str) -> Result<Vec<Entry>, ParseError> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let entry = serde_json::from_str(line).map_err(|e| ParseError {
            source_name: source_name.to_string(),
            line: i + 1,
            message: e.to_string(),
        })?;
        entries.push(entry);
    }
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(ParseError {
            source_name: source_name.to_string(),
            line: text.lines().count(),
            message: "truncated: the last line has no newline".into(),
        });
    }
    Ok(entries)
}

/// Parse a history and check its shape ([`check_shape`]): what `pitfall
/// check` accepts.
pub fn parse_history(text: &str, source_name: &str) -> Result<Vec<Entry>, ParseError> {
    let entries = parse_jsonl(text, source_name)?;
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, _)| i + 1)
        .collect();
    check_shape(&entries, &lines).map_err(|(line, message)| ParseError {
        source_name: source_name.to_string(),
        line,
        message,
    })?;
    Ok(entries)
}

/// Whether entries can be one run's history, as a recorder writes it: one
/// run header, first; time never goes backwards; no broker offset appended
/// twice and no DB commit position used twice. A history that is shuffled,
/// reversed, concatenated or has duplicated lines fails here, before any
/// checker could mistake it for a system bug. `lines[i]` is entry `i`'s line
/// number, for the error, which is `(line, message)`.
pub fn check_shape(entries: &[Entry], lines: &[usize]) -> Result<(), (usize, String)> {
    let shapes: Vec<(u64, Shape)> = entries
        .iter()
        .map(|e| {
            let shape = match &e.event {
                Event::Run { .. } => Shape::Run,
                Event::Append {
                    topic,
                    partition,
                    offset,
                    ..
                } => Shape::Append(topic, *partition, *offset),
                Event::DbCommit { db, lsn, .. } => Shape::Commit(db, *lsn),
                _ => Shape::Other,
            };
            (e.t, shape)
        })
        .collect();
    check_shape_of(&shapes, lines)
}

/// What [`check_shape`] looks at in an entry: its time and whether it is
/// the run header, an append (topic, partition, offset) or a DB commit (DB,
/// position).
#[derive(Clone, Copy)]
pub(crate) enum Shape<'a> {
    Run,
    Append(&'a str, u32, u64),
    Commit(&'a str, Lsn),
    Other,
}

/// [`check_shape`] over each entry's time and [`Shape`].
pub(crate) fn check_shape_of(
    entries: &[(u64, Shape<'_>)],
    lines: &[usize],
) -> Result<(), (usize, String)> {
    let line = |i: usize| lines.get(i).copied().unwrap_or(i + 1);
    match entries.first() {
        None => return Err((1, "an empty history: no run header".into())),
        Some((_, Shape::Run)) => {}
        Some(_) => return Err((line(0), "a history starts with its run header".into())),
    }
    let mut appends: LookupMap<(&str, u32), Seen> = LookupMap::default();
    let mut commits: LookupMap<&str, Seen> = LookupMap::default();
    for (i, (t, shape)) in entries.iter().enumerate().skip(1) {
        let prev = entries[i - 1].0;
        if *t < prev {
            return Err((
                line(i),
                format!(
                    "time goes backwards: t={t} after t={prev} on line {}",
                    line(i - 1)
                ),
            ));
        }
        let first = match *shape {
            Shape::Run => {
                return Err((
                    line(i),
                    format!(
                        "a second run header (the first is on line {}): two histories in one file?",
                        line(0)
                    ),
                ))
            }
            Shape::Append(topic, partition, offset) => {
                let seen = appends.entry((topic, partition)).or_default();
                seen.insert(offset, i).map(|at| {
                    (
                        at,
                        format!("offset {offset} of {topic}/{partition} appended twice"),
                    )
                })
            }
            Shape::Commit(db, lsn) => commits.entry(db).or_default().insert(lsn, i).map(|at| {
                (
                    at,
                    format!("commit position (LSN) {lsn} of {db} used twice"),
                )
            }),
            Shape::Other => None,
        };
        if let Some((at, what)) = first {
            return Err((
                line(i),
                format!("{what}; the first is on line {}", line(at)),
            ));
        }
    }
    Ok(())
}

/// The positions seen in one place (a partition's offsets, a DB's LSNs),
/// each with the entry that had it first. A place's positions mostly come
/// in increasing order: those are kept as a sorted run, which costs a push,
/// and only the others in a map.
#[derive(Default)]
struct Seen {
    run: Vec<(u64, usize)>,
    out_of_order: LookupMap<u64, usize>,
}

impl Seen {
    /// Note `position` at entry `i`; the entry that had it already, if one
    /// did. A position above the run's last is new: every position out of
    /// order was below the run's last when it came.
    fn insert(&mut self, position: u64, i: usize) -> Option<usize> {
        match self.run.last() {
            Some(&(last, _)) if position <= last => {
                if let Ok(k) = self.run.binary_search_by_key(&position, |&(p, _)| p) {
                    return Some(self.run[k].1);
                }
                match self.out_of_order.entry(position) {
                    std::collections::hash_map::Entry::Occupied(first) => Some(*first.get()),
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(i);
                        None
                    }
                }
            }
            _ => {
                self.run.push((position, i));
                None
            }
        }
    }
}

/// The first line at which two serialized histories differ, with both lines.
pub fn first_divergence(a: &str, b: &str) -> Option<(usize, String, String)> {
    let mut la = a.lines();
    let mut lb = b.lines();
    let mut n = 0;
    loop {
        n += 1;
        match (la.next(), lb.next()) {
            (None, None) => return None,
            (x, y) if x == y => continue,
            (x, y) => {
                let show = |l: Option<&str>| l.unwrap_or("<end of history>").to_string();
                return Some((n, show(x), show(y)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_round_trips() {
        let entries = vec![
            Entry {
                t: 0,
                event: Event::Run {
                    scenario: "s".into(),
                    seed: 3,
                    mode: "sim".into(),
                    system: "toy".into(),
                    variants: BTreeMap::new(),
                },
            },
            Entry {
                t: 12,
                event: Event::Ok {
                    process: "client-1".into(),
                    op: "pay".into(),
                    request_id: "r1".into(),
                    attempt: 1,
                    value: None,
                },
            },
        ];
        let text = to_jsonl(&entries);
        assert!(text.starts_with("{\"t\":0,\"type\":\"run\""), "{text}");
        assert_eq!(parse_jsonl(&text, "h.jsonl").unwrap(), entries);
    }

    #[test]
    fn malformed_and_truncated_lines_are_located() {
        let err = parse_jsonl(
            "{\"t\":0,\"type\":\"phase\",\"phase\":\"chaos\"}\n{\"t\":1,\"type\":\"nope\"}\n",
            "h.jsonl",
        )
        .unwrap_err();
        assert_eq!(err.line, 2);
        assert!(
            err.to_string()
                .starts_with("h.jsonl:2: unknown variant `nope`"),
            "{err}"
        );

        let err = parse_jsonl(
            "{\"t\":0,\"type\":\"phase\",\"phase\":\"chaos\"}\n{\"t\":1,\"ty",
            "h.jsonl",
        )
        .unwrap_err();
        assert_eq!(err.line, 2);
    }

    fn header(t: u64) -> Entry {
        Entry {
            t,
            event: Event::Run {
                scenario: "s".into(),
                seed: 1,
                mode: "sim".into(),
                system: String::new(),
                variants: BTreeMap::new(),
            },
        }
    }

    fn append(t: u64, offset: u64) -> Entry {
        Entry {
            t,
            event: Event::Append {
                topic: "payments".into(),
                partition: 0,
                offset,
                key: "k".into(),
                headers: vec![],
                producer: "p".into(),
                value: Value::Null,
                wire_bytes: None,
            },
        }
    }

    fn commit(t: u64, lsn: Lsn) -> Entry {
        Entry {
            t,
            event: Event::DbCommit {
                db: "payments".into(),
                process: "api".into(),
                lsn,
                changes: vec![],
            },
        }
    }

    fn shape_error(entries: &[Entry]) -> String {
        let text = to_jsonl(entries);
        parse_history(&text, "h.jsonl").unwrap_err().to_string()
    }

    #[test]
    fn a_well_formed_history_passes_the_shape_check() {
        let good = [
            header(0),
            commit(1, 1),
            append(2, 0),
            append(2, 1),
            commit(3, 2),
        ];
        assert_eq!(parse_history(&to_jsonl(&good), "h.jsonl").unwrap(), good);
    }

    #[test]
    fn corrupt_histories_are_refused_with_the_line() {
        let good = vec![header(0), commit(1, 1), append(2, 0), append(3, 1)];
        let mut reversed = good.clone();
        reversed.reverse();
        assert_eq!(
            shape_error(&reversed),
            "h.jsonl:1: a history starts with its run header"
        );
        let mut shuffled = good.clone();
        shuffled.swap(2, 3);
        assert_eq!(shuffled[2].t, 3, "the swap puts the later append first");
        assert_eq!(
            shape_error(&shuffled),
            "h.jsonl:4: time goes backwards: t=2 after t=3 on line 3"
        );
        let twice: Vec<Entry> = good.iter().chain(good.iter()).cloned().collect();
        assert_eq!(
            shape_error(&twice),
            "h.jsonl:5: time goes backwards: t=0 after t=3 on line 4"
        );
        let mut whole_twice = good.clone();
        whole_twice.push(header(3));
        assert_eq!(
            shape_error(&whole_twice),
            "h.jsonl:5: a second run header (the first is on line 1): two histories in one file?"
        );
        let lines_twice = vec![header(0), commit(1, 1), commit(1, 1)];
        assert_eq!(
            shape_error(&lines_twice),
            "h.jsonl:3: commit position (LSN) 1 of payments used twice; the first is on line 2"
        );
        let appended_twice = vec![header(0), append(2, 0), append(2, 0)];
        assert_eq!(
            shape_error(&appended_twice),
            "h.jsonl:3: offset 0 of payments/0 appended twice; the first is on line 2"
        );
        // Out of order: a position below the highest one seen is new unless
        // it came before, in order or not.
        let out_of_order = vec![header(0), append(2, 5), append(2, 3), append(2, 7)];
        assert!(parse_history(&to_jsonl(&out_of_order), "h.jsonl").is_ok());
        let again_below = vec![
            header(0),
            append(2, 5),
            append(2, 3),
            append(2, 7),
            append(2, 3),
        ];
        assert_eq!(
            shape_error(&again_below),
            "h.jsonl:5: offset 3 of payments/0 appended twice; the first is on line 3"
        );
        let again_in_run = vec![
            header(0),
            commit(1, 4),
            commit(1, 9),
            commit(1, 2),
            commit(1, 4),
        ];
        assert_eq!(
            shape_error(&again_in_run),
            "h.jsonl:5: commit position (LSN) 4 of payments used twice; the first is on line 2"
        );
        assert_eq!(
            shape_error(&[]),
            "h.jsonl:1: an empty history: no run header"
        );
    }

    #[test]
    fn divergence_names_the_first_differing_line() {
        assert_eq!(first_divergence("a\nb\n", "a\nb\n"), None);
        assert_eq!(
            first_divergence("a\nb\nc\n", "a\nx\nc\n"),
            Some((2, "b".into(), "x".into()))
        );
        assert_eq!(
            first_divergence("a\n", "a\nb\n"),
            Some((2, "<end of history>".into(), "b".into()))
        );
    }
}
