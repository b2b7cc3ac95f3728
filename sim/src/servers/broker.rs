//! The simulated broker, with Kafka semantics: topics of N partitions with
//! per-partition offsets and headers, a maximum message size, idempotent
//! producers (producer id + per-partition sequence), consumer groups with
//! durable committed offsets and server-side eager rebalancing when members
//! join or stop heartbeating, and transactions: a coordinator per
//! `transactional.id` with producer epochs that fence zombies, partitions and
//! group offsets added to the open transaction, commit and abort markers
//! written into each partition, `read_committed` fetches that stop at the
//! last stable offset and skip aborted records, and a timeout that aborts a
//! stuck transaction. The acknowledged log, committed offsets, producer
//! sequences and transactions survive a crash; group membership does not.

use super::{before_request, peer_name, SharedFaults};
use crate::wire;
use pitfall_harness::coverage;
use pitfall_harness::history::{value_repr, Event, History};
use pitfall_harness::system::BROKER;
use pitfall_ports::codec::{Codec, DecompressError};
use pitfall_ports::{Blob, TopicPartitionOffset};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use turmoil::net::TcpListener;

pub const PORT: u16 = 9092;
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = pitfall_ports::MAX_MESSAGE_BYTES;
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How many recent sequences per producer and partition the broker remembers
/// to answer retried duplicates (Kafka keeps five batches).
const SEQUENCE_WINDOW: usize = 5;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireRecord {
    pub offset: u64,
    pub key: String,
    /// The value as the broker keeps it: compressed with `codec` when its
    /// producer compressed the batch ([`WireRecord::value`] undoes that).
    pub value: Blob,
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub codec: Option<Codec>,
}

impl WireRecord {
    /// The value its producer sent. A compressed batch crosses the wire
    /// and sits in the log compressed, and the consumer decompresses it,
    /// as a Kafka consumer does.
    pub fn value(&self) -> Result<Blob, DecompressError> {
        match self.codec {
            None => Ok(self.value.clone()),
            Some(codec) => codec.decompress(&self.value.bytes()).map(Blob::from),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum BrokerRequest {
    Metadata {
        topic: String,
    },
    InitProducer,
    Produce {
        topic: String,
        partition: u32,
        key: String,
        value: Blob,
        headers: Vec<(String, String)>,
        /// Producer id and sequence, for idempotent producers.
        sequence: Option<(u64, u64)>,
        /// The codec `value` is compressed with (batch compression).
        #[serde(default)]
        codec: Option<Codec>,
        /// The transaction this record belongs to.
        #[serde(default)]
        txn: Option<TxnRef>,
    },
    Fetch {
        topic: String,
        partition: u32,
        offset: u64,
        max: usize,
        group: String,
        #[serde(default)]
        read_committed: bool,
    },
    /// A consumer's fetch of its whole assignment, as Kafka's: the records
    /// of the first of `parts` (topic, partition, offset) that has any,
    /// waiting up to `max_wait_ms` for some to arrive
    /// (`fetch.max.wait.ms`).
    FetchMany {
        parts: Vec<(String, u32, u64)>,
        max: usize,
        group: String,
        read_committed: bool,
        max_wait_ms: u64,
    },
    /// InitProducerId with a `transactional.id`: bump the epoch (fencing
    /// the previous producer) and abort its open transaction.
    InitTxn {
        transactional_id: String,
        timeout_ms: u64,
    },
    /// AddPartitionsToTxn (starts the transaction on its first call).
    AddPartitions {
        txn: TxnRef,
        partitions: Vec<(String, u32)>,
    },
    /// TxnOffsetCommit: offsets committed with the transaction, from a
    /// group member of this generation.
    TxnOffsets {
        txn: TxnRef,
        group: String,
        member_id: String,
        generation: u64,
        offsets: Vec<TopicPartitionOffset>,
    },
    /// EndTxn: write the commit or abort markers.
    EndTxn {
        txn: TxnRef,
        commit: bool,
    },
    Join {
        group: String,
        member_id: Option<String>,
        topics: Vec<String>,
        session_timeout_ms: u64,
    },
    Heartbeat {
        group: String,
        member_id: String,
        generation: u64,
    },
    Commit {
        group: String,
        member_id: String,
        generation: u64,
        offsets: Vec<TopicPartitionOffset>,
    },
    Committed {
        group: String,
        topic: String,
        partition: u32,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerError {
    UnknownTopic(String),
    MessageTooLarge {
        size: usize,
        max: usize,
    },
    /// Retriable: e.g. not enough replicas.
    NotAvailable,
    /// An idempotent producer skipped a sequence; an earlier request is still
    /// pending. Retriable.
    OutOfOrderSequence,
    RebalanceInProgress,
    UnknownMember,
    IllegalGeneration,
    /// A compressed batch that does not decompress.
    Corrupt(String),
    /// A newer producer with this `transactional.id` exists (or the broker
    /// aborted this one's transaction on timeout and bumped its epoch).
    ProducerFenced,
    /// The request does not fit the transaction's state (a record for a
    /// partition never added, or no transaction open).
    InvalidTxnState,
    /// An open transaction holds offsets for this partition of the group:
    /// ask again once it ended (KIP-447's stable offset fetch), so a new
    /// owner does not start from offsets about to move. Retriable.
    UnstableOffsetCommit,
}

/// A transactional producer's identity on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TxnRef {
    pub transactional_id: String,
    pub producer_id: u64,
    pub epoch: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerResponse {
    Partitions(u32),
    ProducerId(u64),
    ProducerEpoch {
        producer_id: u64,
        epoch: u32,
    },
    Appended {
        offset: u64,
    },
    Records(Vec<WireRecord>),
    /// A [`BrokerRequest::FetchMany`]'s answer: the index in `parts` the
    /// records come from (none if the wait ran out).
    Fetched {
        part: usize,
        records: Vec<WireRecord>,
    },
    Joined {
        member_id: String,
        generation: u64,
        assignment: Vec<(String, u32)>,
    },
    Done,
    Offset(Option<u64>),
    Error(BrokerError),
}

#[derive(Clone, Debug)]
struct Stored {
    key: String,
    /// The value as it came over the wire: compressed with `codec`, when
    /// the producer compressed the batch, so the size limit applies to it
    /// and a log holds what Kafka's holds, not the values decompressed.
    value: Blob,
    headers: Vec<(String, String)>,
    codec: Option<Codec>,
    status: Status,
}

/// Where a stored record stands with respect to transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Not transactional, or its transaction committed.
    Visible,
    /// In the open transaction of this producer id.
    Pending(u64),
    Aborted,
    /// A commit or abort marker (a control record: never handed to a
    /// consumer).
    Marker,
}

/// A `transactional.id`'s coordinator state.
#[derive(Debug)]
struct Txn {
    producer_id: u64,
    epoch: u32,
    timeout_ms: u64,
    /// The process that registered the current epoch.
    process: String,
    open: Option<OpenTxn>,
}

#[derive(Debug, Default)]
struct OpenTxn {
    started_ms: u64,
    partitions: BTreeSet<(String, u32)>,
    /// (group, topic, partition) → offset, committed with the transaction.
    offsets: BTreeMap<(String, String, u32), u64>,
    records: Vec<TopicPartitionOffset>,
}

#[derive(Debug, Default)]
struct Sequences {
    last: Option<u64>,
    recent: VecDeque<(u64, u64)>,
}

#[derive(Debug)]
struct Member {
    topics: Vec<String>,
    session_timeout_ms: u64,
    last_seen_ms: u64,
    assignment: Vec<(String, u32)>,
}

#[derive(Debug, Default)]
struct Group {
    generation: u64,
    members: BTreeMap<String, Member>,
    joined: u64,
}

/// The broker's state. `groups` is membership only and is cleared when the
/// broker restarts; everything else is durable.
#[derive(Debug)]
pub struct BrokerState {
    logs: BTreeMap<String, Vec<Vec<Stored>>>,
    committed: BTreeMap<(String, String, u32), u64>,
    producers: BTreeMap<(u64, String, u32), Sequences>,
    next_producer_id: u64,
    groups: BTreeMap<String, Group>,
    txns: BTreeMap<String, Txn>,
    /// Groups whose offsets are committed by transactions.
    txn_groups: BTreeSet<String>,
    pub max_message_bytes: usize,
    /// What an observer keeps for the coverage marks (not broker state):
    /// per (group, topic, partition), the offset after the last record
    /// served; and the appends whose ack was lost, by (producer, topic,
    /// partition, key, value size).
    served: BTreeMap<(String, String, u32), u64>,
    lost_acks: BTreeSet<(String, String, u32, String, usize)>,
}

impl Default for BrokerState {
    fn default() -> Self {
        BrokerState {
            logs: BTreeMap::new(),
            committed: BTreeMap::new(),
            producers: BTreeMap::new(),
            next_producer_id: 1,
            groups: BTreeMap::new(),
            txns: BTreeMap::new(),
            txn_groups: BTreeSet::new(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            served: BTreeMap::new(),
            lost_acks: BTreeSet::new(),
        }
    }
}

impl BrokerState {
    pub fn create_topic(&mut self, topic: &str, partitions: u32) {
        self.logs
            .entry(topic.to_string())
            .or_insert_with(|| (0..partitions).map(|_| Vec::new()).collect());
    }

    /// Log end offset of every partition of `topic`.
    pub fn end_offsets(&self, topic: &str) -> Vec<u64> {
        self.logs
            .get(topic)
            .map(|ps| ps.iter().map(|p| p.len() as u64).collect())
            .unwrap_or_default()
    }

    /// Per partition of `topic`, the offset after its last record a
    /// consumer still has to read: transaction markers and aborted records
    /// at the end are not lag, records of an open transaction are.
    pub fn readable_ends(&self, topic: &str) -> Vec<u64> {
        self.logs
            .get(topic)
            .map(|ps| {
                ps.iter()
                    .map(|log| {
                        log.iter()
                            .rposition(|r| matches!(r.status, Status::Visible | Status::Pending(_)))
                            .map_or(0, |i| i as u64 + 1)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether an open transaction will commit an offset for this partition
    /// of `group`.
    fn offset_pending(&self, group: &str, topic: &str, partition: u32) -> bool {
        let key = (group.to_string(), topic.to_string(), partition);
        self.txns
            .values()
            .filter_map(|t| t.open.as_ref())
            .any(|o| o.offsets.contains_key(&key))
    }

    pub fn committed(&self, group: &str, topic: &str, partition: u32) -> Option<u64> {
        self.committed
            .get(&(group.to_string(), topic.to_string(), partition))
            .copied()
    }

    /// Note records served to `group`; whether any was served before.
    fn serve(&mut self, group: &str, topic: &str, partition: u32, records: &[WireRecord]) -> bool {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return false;
        };
        let next = self
            .served
            .entry((group.to_string(), topic.to_string(), partition))
            .or_insert(0);
        let again = first.offset < *next;
        *next = (*next).max(last.offset + 1);
        again
    }

    /// Whether `group` was served records it has not committed.
    fn has_uncommitted(&self, group: &str) -> bool {
        self.served
            .iter()
            .filter(|((g, _, _), _)| g == group)
            .any(|((g, t, p), next)| self.committed(g, t, *p).unwrap_or(0) < *next)
    }

    /// Forget group membership, as a restarted broker does.
    pub fn forget_members(&mut self) {
        for group in self.groups.values_mut() {
            group.members.clear();
            group.generation += 1;
        }
    }

    fn produce(
        &mut self,
        topic: &str,
        partition: u32,
        mut record: Stored,
        sequence: Option<(u64, u64)>,
        txn: Option<&TxnRef>,
    ) -> Result<(u64, bool), BrokerError> {
        if let Some(t) = txn {
            let open = self.current(t)?.open.as_ref();
            if !open.is_some_and(|o| o.partitions.contains(&(topic.to_string(), partition))) {
                return Err(BrokerError::InvalidTxnState);
            }
            record.status = Status::Pending(t.producer_id);
        }
        let size = pitfall_ports::message_size(&record.key, record.value.len(), &record.headers);
        if size > self.max_message_bytes {
            return Err(BrokerError::MessageTooLarge {
                size,
                max: self.max_message_bytes,
            });
        }
        let log = self
            .logs
            .get_mut(topic)
            .and_then(|ps| ps.get_mut(partition as usize))
            .ok_or_else(|| BrokerError::UnknownTopic(format!("{topic}/{partition}")))?;
        let offset = log.len() as u64;
        if let Some((pid, seq)) = sequence {
            let seqs = self
                .producers
                .entry((pid, topic.to_string(), partition))
                .or_default();
            let expected = seqs.last.map_or(0, |l| l + 1);
            if seq < expected {
                // A retry of something already appended: answer with the
                // original offset, append nothing.
                let original = seqs.recent.iter().find(|(s, _)| *s == seq).map(|(_, o)| *o);
                return Ok((original.unwrap_or(offset), false));
            }
            if seq > expected {
                return Err(BrokerError::OutOfOrderSequence);
            }
            seqs.last = Some(seq);
            seqs.recent.push_back((seq, offset));
            if seqs.recent.len() > SEQUENCE_WINDOW {
                seqs.recent.pop_front();
            }
        }
        log.push(record);
        if let Some(t) = txn {
            let txn = self
                .txns
                .get_mut(&t.transactional_id)
                .expect("checked above");
            txn.open
                .as_mut()
                .expect("checked above")
                .records
                .push(TopicPartitionOffset {
                    topic: topic.to_string(),
                    partition,
                    offset,
                });
        }
        Ok((offset, true))
    }

    /// The coordinator state of `t`, if `t` is its current epoch.
    fn current(&mut self, t: &TxnRef) -> Result<&mut Txn, BrokerError> {
        match self.txns.get_mut(&t.transactional_id) {
            Some(txn) if txn.producer_id == t.producer_id && txn.epoch == t.epoch => Ok(txn),
            _ => Err(BrokerError::ProducerFenced),
        }
    }

    /// Register a producer for `id`: a new producer id, or the next epoch of
    /// the existing one, whose open transaction is aborted first.
    fn init_txn(&mut self, id: &str, timeout_ms: u64, process: &str) -> (u64, u32, Vec<Event>) {
        let events = match self.txns.get(id) {
            Some(t) if t.open.is_some() => self.end_txn(id, false),
            _ => Vec::new(),
        };
        let pid = match self.txns.get_mut(id) {
            Some(t) => {
                t.epoch += 1;
                t.timeout_ms = timeout_ms;
                t.process = process.to_string();
                t.producer_id
            }
            None => {
                let pid = self.next_producer_id;
                self.next_producer_id += 1;
                self.txns.insert(
                    id.to_string(),
                    Txn {
                        producer_id: pid,
                        epoch: 0,
                        timeout_ms,
                        process: process.to_string(),
                        open: None,
                    },
                );
                pid
            }
        };
        // A new epoch starts its sequences again.
        self.producers.retain(|(p, _, _), _| *p != pid);
        (pid, self.txns[id].epoch, events)
    }

    /// The open transaction of `t`, started if there is none.
    fn open_txn(&mut self, t: &TxnRef, now_ms: u64) -> Result<&mut OpenTxn, BrokerError> {
        let txn = self.current(t)?;
        Ok(txn.open.get_or_insert_with(|| OpenTxn {
            started_ms: now_ms,
            ..OpenTxn::default()
        }))
    }

    /// Commit or abort `id`'s open transaction: mark its records, write a
    /// marker into each of its partitions, and (on commit) commit its group
    /// offsets. Returns what the history records.
    fn end_txn(&mut self, id: &str, commit: bool) -> Vec<Event> {
        let Some(txn) = self.txns.get_mut(id) else {
            return Vec::new();
        };
        let Some(open) = txn.open.take() else {
            return Vec::new();
        };
        let process = txn.process.clone();
        let outcome = if commit {
            Status::Visible
        } else {
            Status::Aborted
        };
        for o in &open.records {
            if let Some(r) = self.record_mut(&o.topic, o.partition, o.offset) {
                r.status = outcome;
            }
        }
        let mut markers = Vec::new();
        for (topic, partition) in &open.partitions {
            let Some(log) = self
                .logs
                .get_mut(topic)
                .and_then(|ps| ps.get_mut(*partition as usize))
            else {
                continue;
            };
            markers.push(TopicPartitionOffset {
                topic: topic.clone(),
                partition: *partition,
                offset: log.len() as u64,
            });
            log.push(Stored {
                key: String::new(),
                value: Blob::default(),
                headers: Vec::new(),
                codec: None,
                status: Status::Marker,
            });
        }
        let mut events = Vec::new();
        if commit {
            for ((group, topic, partition), offset) in &open.offsets {
                self.committed
                    .insert((group.clone(), topic.clone(), *partition), *offset);
                events.push(Event::OffsetCommit {
                    process: process.clone(),
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    offset: *offset,
                });
            }
        }
        events.push(Event::TxnEnd {
            transactional_id: id.to_string(),
            process,
            committed: commit,
            records: open.records,
            markers,
        });
        events
    }

    fn record_mut(&mut self, topic: &str, partition: u32, offset: u64) -> Option<&mut Stored> {
        self.logs
            .get_mut(topic)?
            .get_mut(partition as usize)?
            .get_mut(offset as usize)
    }

    /// Abort every transaction open longer than its timeout, and bump its
    /// epoch so its producer is fenced (as Kafka does since KIP-360).
    pub fn expire_txns(&mut self, now_ms: u64) -> Vec<Event> {
        let expired: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, t)| {
                t.open
                    .as_ref()
                    .is_some_and(|o| now_ms.saturating_sub(o.started_ms) > t.timeout_ms)
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut events = Vec::new();
        for id in expired {
            events.extend(self.end_txn(&id, false));
            if let Some(t) = self.txns.get_mut(&id) {
                t.epoch += 1;
            }
        }
        events
    }

    /// Records from `offset`: never markers; under `read_committed`, no
    /// aborted record and nothing from the last stable offset on.
    fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max: usize,
        read_committed: bool,
    ) -> Result<Vec<WireRecord>, BrokerError> {
        let log = self
            .logs
            .get(topic)
            .and_then(|ps| ps.get(partition as usize))
            .ok_or_else(|| BrokerError::UnknownTopic(format!("{topic}/{partition}")))?;
        // A read_committed reader is never past the last stable offset, so
        // the first open record from its offset on is where it stops.
        Ok(log
            .iter()
            .enumerate()
            .skip(offset as usize)
            .take_while(|(_, r)| !(read_committed && matches!(r.status, Status::Pending(_))))
            .filter(|(_, r)| match r.status {
                Status::Marker => false,
                Status::Aborted => !read_committed,
                _ => true,
            })
            .take(max)
            .map(|(i, r)| WireRecord {
                offset: i as u64,
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r.headers.clone(),
                codec: r.codec,
            })
            .collect())
    }

    /// Recompute the group's assignment: partitions of the subscribed topics,
    /// sorted, dealt round-robin to members sorted by id.
    fn rebalance(&mut self, group_name: &str) -> Event {
        let group = self.groups.entry(group_name.to_string()).or_default();
        group.generation += 1;
        let mut topics: Vec<&String> = group.members.values().flat_map(|m| &m.topics).collect();
        topics.sort();
        topics.dedup();
        let partitions: Vec<(String, u32)> = topics
            .iter()
            .flat_map(|t| {
                let n = self.logs.get(*t).map_or(0, |ps| ps.len() as u32);
                (0..n).map(move |p| ((*t).clone(), p))
            })
            .collect();
        for m in group.members.values_mut() {
            m.assignment.clear();
        }
        let ids: Vec<String> = group.members.keys().cloned().collect();
        if !ids.is_empty() {
            for (i, tp) in partitions.into_iter().enumerate() {
                let member = group
                    .members
                    .get_mut(&ids[i % ids.len()])
                    .expect("member exists");
                if member.topics.contains(&tp.0) {
                    member.assignment.push(tp);
                }
            }
        }
        Event::Rebalance {
            group: group_name.to_string(),
            generation: group.generation,
            assignment: group
                .members
                .iter()
                .map(|(id, m)| {
                    (
                        id.clone(),
                        m.assignment
                            .iter()
                            .map(|(t, p)| format!("{t}/{p}"))
                            .collect(),
                    )
                })
                .collect(),
        }
    }

    /// Remove members whose session expired; returns the rebalances done.
    /// The first simulated millisecond at which [`BrokerState::expire_members`]
    /// or [`BrokerState::expire_txns`] would expire something, if nothing
    /// else happens before: a member's session or an open transaction
    /// runs out strictly after its timeout.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        let sessions = self.groups.values().flat_map(|g| g.members.values());
        let sessions = sessions.map(|m| m.last_seen_ms + m.session_timeout_ms + 1);
        let txns = self
            .txns
            .values()
            .filter_map(|t| t.open.as_ref().map(|o| o.started_ms + t.timeout_ms + 1));
        sessions.chain(txns).min()
    }

    pub fn expire_members(&mut self, now_ms: u64) -> Vec<Event> {
        let mut expired_groups = Vec::new();
        for (name, group) in &mut self.groups {
            let before = group.members.len();
            group
                .members
                .retain(|_, m| now_ms.saturating_sub(m.last_seen_ms) <= m.session_timeout_ms);
            if group.members.len() != before {
                expired_groups.push(name.clone());
            }
        }
        expired_groups.iter().map(|g| self.rebalance(g)).collect()
    }
}

/// How often the reaper looks for expired sessions and transactions.
const REAP_EVERY_MS: u64 = 100;

/// Simulated milliseconds, for session timeouts.
fn sim_now_ms() -> u64 {
    turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64
}

#[derive(Clone)]
pub struct BrokerServer {
    pub state: Arc<Mutex<BrokerState>>,
    pub faults: SharedFaults,
    pub history: History,
    /// Woken whenever a request may have made records readable: what a
    /// waiting [`BrokerRequest::FetchMany`] waits on.
    pub changed: Arc<tokio::sync::Notify>,
    /// Woken after every request, which may have added or moved a session
    /// or transaction deadline: what the reaper sleeps on between them.
    pub deadlines: Arc<tokio::sync::Notify>,
}

impl BrokerServer {
    /// The host software.
    pub async fn serve(self) -> turmoil::Result {
        self.state.lock().unwrap().forget_members();
        let reaper = self.clone();
        tokio::task::spawn_local(async move {
            // The reaper looks every 100 ms from its start, but wakes only
            // for a look that can expire something: before the earliest
            // deadline every look would find nothing. A request wakes it to
            // work its next look out again.
            let (start, start_ms) = (tokio::time::Instant::now(), sim_now_ms());
            let mut looks = 0u64;
            loop {
                let due_ms = reaper.state.lock().unwrap().next_expiry_ms();
                let wake = due_ms.map(|due| {
                    let look = due.saturating_sub(start_ms).div_ceil(REAP_EVERY_MS);
                    look.max(looks + 1)
                });
                let deadlines = reaper.deadlines.notified();
                match wake {
                    None => {
                        deadlines.await;
                        continue;
                    }
                    Some(look) => {
                        let at = start + Duration::from_millis(look * REAP_EVERY_MS);
                        tokio::select! {
                            _ = tokio::time::sleep_until(at) => looks = look,
                            _ = deadlines => continue,
                        }
                    }
                }
                let now = sim_now_ms();
                let mut state = reaper.state.lock().unwrap();
                let mut events = state.expire_members(now);
                let in_flight = events.iter().any(
                    |e| matches!(e, Event::Rebalance { group, .. } if state.has_uncommitted(group)),
                );
                let expired = state.expire_txns(now);
                if !expired.is_empty() {
                    reaper.changed.notify_waiters();
                }
                events.extend(expired);
                drop(state);
                reaper.record_all(events);
                if in_flight {
                    reaper
                        .history
                        .mark(BROKER, coverage::REBALANCE_WITH_UNCOMMITTED);
                }
            }
        });
        let listener = TcpListener::bind(("0.0.0.0", PORT)).await?;
        loop {
            let (stream, peer) = listener.accept().await?;
            if self.faults.lock().unwrap().down {
                drop(stream);
                continue;
            }
            let server = self.clone();
            tokio::task::spawn_local(async move {
                server
                    .connection(wire::framed(stream), peer_name(peer))
                    .await;
            });
        }
    }

    async fn connection(&self, mut conn: wire::Conn, process: String) {
        loop {
            let req: BrokerRequest =
                match tokio::time::timeout(IDLE_TIMEOUT, wire::recv(&mut conn)).await {
                    Ok(Ok(Some(req))) => req,
                    _ => return,
                };
            if !before_request(&self.faults).await {
                return;
            }
            // Requests that can make records readable (an append, a
            // transaction's end) wake the fetches waiting for some.
            let wakes = matches!(
                req,
                BrokerRequest::Produce { .. }
                    | BrokerRequest::EndTxn { .. }
                    | BrokerRequest::InitTxn { .. }
            );
            let resp = self.handle(req, &process).await;
            if wakes {
                self.changed.notify_waiters();
            }
            self.deadlines.notify_one();
            let Some(resp) = resp else {
                return; // the reply is lost
            };
            if wire::send(&mut conn, &resp).await.is_err() {
                return;
            }
        }
    }

    fn roll(&self, pick: impl FnOnce(&super::ServerFaults) -> f64) -> bool {
        let mut f = self.faults.lock().unwrap();
        let p = pick(&f);
        f.roll(p)
    }

    /// Handle one request; `None` means drop the connection without replying.
    async fn handle(&self, req: BrokerRequest, process: &str) -> Option<BrokerResponse> {
        let now = sim_now_ms();
        let resp = match req {
            BrokerRequest::Metadata { topic } => {
                match self.state.lock().unwrap().logs.get(&topic) {
                    Some(ps) => BrokerResponse::Partitions(ps.len() as u32),
                    None => BrokerResponse::Error(BrokerError::UnknownTopic(topic)),
                }
            }
            BrokerRequest::InitProducer => {
                let mut s = self.state.lock().unwrap();
                let id = s.next_producer_id;
                s.next_producer_id += 1;
                BrokerResponse::ProducerId(id)
            }
            BrokerRequest::Produce {
                topic,
                partition,
                key,
                value,
                headers,
                sequence,
                codec,
                txn,
            } => {
                if self.roll(|f| f.reorder) {
                    let delay = self.faults.lock().unwrap().draw_ms(20, 200);
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    return Some(BrokerResponse::Error(BrokerError::NotAvailable));
                }
                // Like a broker validating a compressed batch: decompress
                // it (real codecs), for the history; keep it compressed.
                let raw = match codec {
                    None => value.clone(),
                    Some(codec) => match codec.decompress(&value.bytes()) {
                        Ok(raw) => Blob::from(raw),
                        Err(e) => {
                            return Some(BrokerResponse::Error(BrokerError::Corrupt(e.to_string())))
                        }
                    },
                };
                let record = Stored {
                    key: key.clone(),
                    value,
                    headers: headers.clone(),
                    codec,
                    status: Status::Visible,
                };
                let sent = (
                    process.to_string(),
                    topic.clone(),
                    partition,
                    key.clone(),
                    raw.len(),
                );
                let mut state = self.state.lock().unwrap();
                if state.lost_acks.remove(&sent) {
                    self.history
                        .mark(BROKER, coverage::PRODUCE_RETRIED_AFTER_LOST_ACK);
                }
                let result =
                    state.produce(&topic, partition, record.clone(), sequence, txn.as_ref());
                drop(state);
                match result {
                    Ok((offset, appended)) => {
                        if appended {
                            self.history.record(Event::Append {
                                topic,
                                partition,
                                offset,
                                key,
                                headers,
                                producer: process.to_string(),
                                value: value_repr(&raw),
                                wire_bytes: codec.map(|_| record.value.len() as u64),
                            });
                            if self.faults.lock().unwrap().lose_ack() {
                                self.state.lock().unwrap().lost_acks.insert(sent);
                                return None;
                            }
                        }
                        BrokerResponse::Appended { offset }
                    }
                    Err(e) => BrokerResponse::Error(e),
                }
            }
            BrokerRequest::Fetch {
                topic,
                partition,
                offset,
                max,
                group,
                read_committed,
            } => {
                let fetch = FetchOne::new(max, &group, read_committed);
                match self.fetch_one(&fetch, &topic, partition, offset) {
                    Ok(records) => BrokerResponse::Records(records),
                    Err(e) => BrokerResponse::Error(e),
                }
            }
            BrokerRequest::FetchMany {
                parts,
                max,
                group,
                read_committed,
                max_wait_ms,
            } => {
                let fetch = FetchOne::new(max, &group, read_committed);
                self.fetch_many(fetch, &parts, max_wait_ms).await
            }
            BrokerRequest::Join {
                group,
                member_id,
                topics,
                session_timeout_ms,
            } => {
                let mut s = self.state.lock().unwrap();
                let g = s.groups.entry(group.clone()).or_default();
                let known = member_id.filter(|id| g.members.contains_key(id));
                let (id, rebalance) = match known {
                    Some(id) => {
                        let m = g.members.get_mut(&id).expect("known member");
                        m.last_seen_ms = now;
                        (id, None)
                    }
                    None => {
                        g.joined += 1;
                        let id = format!("{process}-{}", g.joined);
                        g.members.insert(
                            id.clone(),
                            Member {
                                topics,
                                session_timeout_ms,
                                last_seen_ms: now,
                                assignment: Vec::new(),
                            },
                        );
                        (id.clone(), Some(s.rebalance(&group)))
                    }
                };
                let g = &s.groups[&group];
                let resp = BrokerResponse::Joined {
                    generation: g.generation,
                    assignment: g.members[&id].assignment.clone(),
                    member_id: id,
                };
                let in_flight = rebalance.is_some() && s.has_uncommitted(&group);
                drop(s);
                if let Some(e) = rebalance {
                    self.history.record(e);
                }
                if in_flight {
                    self.history
                        .mark(BROKER, coverage::REBALANCE_WITH_UNCOMMITTED);
                }
                resp
            }
            BrokerRequest::Heartbeat {
                group,
                member_id,
                generation,
            } => {
                let mut s = self.state.lock().unwrap();
                let g = s.groups.entry(group).or_default();
                let current = g.generation;
                match g.members.get_mut(&member_id) {
                    None => BrokerResponse::Error(BrokerError::UnknownMember),
                    Some(m) => {
                        m.last_seen_ms = now;
                        if generation == current {
                            BrokerResponse::Done
                        } else {
                            BrokerResponse::Error(BrokerError::RebalanceInProgress)
                        }
                    }
                }
            }
            BrokerRequest::Commit {
                group,
                member_id,
                generation,
                offsets,
            } => {
                let mut s = self.state.lock().unwrap();
                let g = s.groups.entry(group.clone()).or_default();
                let valid = g.generation == generation && g.members.contains_key(&member_id);
                if valid {
                    for o in &offsets {
                        s.committed
                            .insert((group.clone(), o.topic.clone(), o.partition), o.offset);
                    }
                    drop(s);
                    for o in offsets {
                        self.history.record(Event::OffsetCommit {
                            process: process.to_string(),
                            group: group.clone(),
                            topic: o.topic,
                            partition: o.partition,
                            offset: o.offset,
                        });
                    }
                    BrokerResponse::Done
                } else {
                    BrokerResponse::Error(BrokerError::IllegalGeneration)
                }
            }
            BrokerRequest::InitTxn {
                transactional_id,
                timeout_ms,
            } => {
                let (producer_id, epoch, events) =
                    self.state
                        .lock()
                        .unwrap()
                        .init_txn(&transactional_id, timeout_ms, process);
                self.record_all(events);
                BrokerResponse::ProducerEpoch { producer_id, epoch }
            }
            BrokerRequest::AddPartitions { txn, partitions } => {
                let mut s = self.state.lock().unwrap();
                match s.open_txn(&txn, now) {
                    Ok(open) => {
                        open.partitions.extend(partitions);
                        BrokerResponse::Done
                    }
                    Err(e) => BrokerResponse::Error(e),
                }
            }
            BrokerRequest::TxnOffsets {
                txn,
                group,
                member_id,
                generation,
                offsets,
            } => self.txn_offsets(&txn, &group, &member_id, generation, offsets, now),
            BrokerRequest::EndTxn { txn, commit } => {
                let mut s = self.state.lock().unwrap();
                match s.current(&txn) {
                    Err(e) => BrokerResponse::Error(e),
                    Ok(_) => {
                        let events = s.end_txn(&txn.transactional_id, commit);
                        drop(s);
                        self.record_all(events);
                        BrokerResponse::Done
                    }
                }
            }
            BrokerRequest::Committed {
                group,
                topic,
                partition,
            } => {
                let s = self.state.lock().unwrap();
                if s.offset_pending(&group, &topic, partition) {
                    BrokerResponse::Error(BrokerError::UnstableOffsetCommit)
                } else {
                    BrokerResponse::Offset(s.committed(&group, &topic, partition))
                }
            }
        };
        if resp == BrokerResponse::Error(BrokerError::ProducerFenced) {
            self.history.mark(BROKER, coverage::PRODUCER_FENCED);
        }
        Some(resp)
    }
}

impl BrokerServer {
    /// Record `events`, marking an aborted transaction.
    /// One partition's records from `offset` for a consumer of `group`.
    /// Where the group committed less than `offset`, a duplicate-delivery
    /// fault may go back there first (only on a fetch's first look).
    fn fetch_one(
        &self,
        fetch: &FetchOne<'_>,
        topic: &str,
        partition: u32,
        mut offset: u64,
    ) -> Result<Vec<WireRecord>, BrokerError> {
        let (committed, transactional) = {
            let s = self.state.lock().unwrap();
            (
                s.committed(fetch.group, topic, partition),
                s.txn_groups.contains(fetch.group),
            )
        };
        // A transactional group's offsets commit atomically with its
        // output: redelivery goes back to them, never behind.
        let to = if transactional {
            committed.filter(|c| *c < offset).unwrap_or(offset)
        } else {
            redelivery_start(committed, offset, fetch.max)
        };
        if fetch.may_redeliver && to < offset && self.roll(|f| f.duplicate_delivery) {
            self.history.record(Event::Rewind {
                group: fetch.group.to_string(),
                topic: topic.to_string(),
                partition,
                from: offset,
                to,
            });
            offset = to;
        }
        let mut state = self.state.lock().unwrap();
        let records = state.fetch(topic, partition, offset, fetch.max, fetch.read_committed)?;
        if state.serve(fetch.group, topic, partition, &records) {
            self.history.mark(BROKER, coverage::DUPLICATE_DELIVERED);
        }
        Ok(records)
    }

    /// The first of `parts` with records, waiting up to `max_wait_ms` for a
    /// request that makes some readable.
    async fn fetch_many(
        &self,
        mut fetch: FetchOne<'_>,
        parts: &[(String, u32, u64)],
        max_wait_ms: u64,
    ) -> BrokerResponse {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(max_wait_ms);
        loop {
            // Registered before looking, so a change made meanwhile wakes it.
            let changed = self.changed.notified();
            for (part, (topic, partition, offset)) in parts.iter().enumerate() {
                match self.fetch_one(&fetch, topic, *partition, *offset) {
                    Ok(records) if records.is_empty() => {}
                    Ok(records) => return BrokerResponse::Fetched { part, records },
                    Err(e) => return BrokerResponse::Error(e),
                }
            }
            fetch.may_redeliver = false;
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return BrokerResponse::Fetched {
                    part: 0,
                    records: Vec::new(),
                };
            }
        }
    }

    fn record_all(&self, events: Vec<Event>) {
        for e in events {
            if matches!(
                e,
                Event::TxnEnd {
                    committed: false,
                    ..
                }
            ) {
                self.history.mark(BROKER, coverage::TXN_ABORTED);
            }
            self.history.record(e);
        }
    }

    /// Offsets to commit with `txn`, from a member of the group's current
    /// generation only: a zombie's are refused (KIP-447).
    fn txn_offsets(
        &self,
        txn: &TxnRef,
        group: &str,
        member_id: &str,
        generation: u64,
        offsets: Vec<TopicPartitionOffset>,
        now_ms: u64,
    ) -> BrokerResponse {
        let mut s = self.state.lock().unwrap();
        let current = s
            .groups
            .get(group)
            .is_some_and(|g| g.generation == generation && g.members.contains_key(member_id));
        if !current {
            return BrokerResponse::Error(BrokerError::IllegalGeneration);
        }
        s.txn_groups.insert(group.to_string());
        match s.open_txn(txn, now_ms) {
            Ok(open) => {
                for o in offsets {
                    open.offsets
                        .insert((group.to_string(), o.topic, o.partition), o.offset);
                }
                BrokerResponse::Done
            }
            Err(e) => BrokerResponse::Error(e),
        }
    }
}

/// What a consumer's fetch asks for, whatever the partition.
struct FetchOne<'a> {
    max: usize,
    group: &'a str,
    read_committed: bool,
    /// Whether a duplicate-delivery fault may apply (a waiting fetch rolls
    /// for it once, not on every look).
    may_redeliver: bool,
}

impl<'a> FetchOne<'a> {
    fn new(max: usize, group: &'a str, read_committed: bool) -> Self {
        FetchOne {
            max,
            group,
            read_committed,
            may_redeliver: true,
        }
    }
}

/// Where a duplicate-delivery fault re-serves a fetch at `offset` from: the
/// group's committed offset when records past it are uncommitted (a
/// consumer that commits late), otherwise up to one batch (`max` records)
/// back, as after a commit that did not stick. Equal to `offset` when there
/// is nothing before it to redeliver.
fn redelivery_start(committed: Option<u64>, offset: u64, max: usize) -> u64 {
    match committed {
        Some(c) if c < offset => c,
        _ => offset.saturating_sub(max.max(1) as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str) -> Stored {
        Stored {
            key: key.into(),
            value: b"v".to_vec().into(),
            headers: vec![],
            codec: None,
            status: Status::Visible,
        }
    }

    #[test]
    fn redelivery_goes_back_to_the_commit_or_one_batch() {
        // Uncommitted records past the commit: back to the commit.
        assert_eq!(redelivery_start(Some(3), 7, 10), 3);
        // Caught up: up to one batch back, never below zero.
        assert_eq!(redelivery_start(Some(7), 7, 5), 2);
        assert_eq!(redelivery_start(None, 3, 5), 0);
        // Nothing before offset 0 to redeliver.
        assert_eq!(redelivery_start(None, 0, 5), 0);
    }

    #[test]
    fn idempotent_sequences_drop_duplicates_and_refuse_gaps() {
        let mut b = BrokerState::default();
        b.create_topic("t", 1);
        assert_eq!(
            b.produce("t", 0, rec("a"), Some((7, 0)), None),
            Ok((0, true))
        );
        assert_eq!(
            b.produce("t", 0, rec("a"), Some((7, 0)), None),
            Ok((0, false)),
            "retry is a no-op"
        );
        assert_eq!(
            b.produce("t", 0, rec("c"), Some((7, 2)), None),
            Err(BrokerError::OutOfOrderSequence)
        );
        assert_eq!(
            b.produce("t", 0, rec("b"), Some((7, 1)), None),
            Ok((1, true))
        );
        assert_eq!(b.end_offsets("t"), vec![2]);
        // Without a producer id the same retry is a duplicate.
        assert_eq!(b.produce("t", 0, rec("a"), None, None), Ok((2, true)));
        assert_eq!(b.produce("t", 0, rec("a"), None, None), Ok((3, true)));
    }

    #[test]
    fn oversized_records_are_refused() {
        let mut b = BrokerState::default();
        b.create_topic("t", 1);
        b.max_message_bytes = 10;
        let big = Stored {
            key: "k".into(),
            value: vec![0; 10].into(),
            headers: vec![],
            codec: None,
            status: Status::Visible,
        };
        assert_eq!(
            b.produce("t", 0, big.clone(), None, None),
            Err(BrokerError::MessageTooLarge { size: 11, max: 10 })
        );
        // A compressed batch is judged by its size on the wire, as kept.
        let compressed = Stored {
            value: vec![0; 5].into(),
            codec: Some(Codec::Lz4),
            ..big.clone()
        };
        assert_eq!(b.produce("t", 0, compressed, None, None), Ok((0, true)));
        let still_big = Stored {
            codec: Some(Codec::Lz4),
            ..big
        };
        assert_eq!(
            b.produce("t", 0, still_big, None, None),
            Err(BrokerError::MessageTooLarge { size: 11, max: 10 })
        );
    }

    #[test]
    fn a_compressed_batch_stays_compressed_until_its_reader_decompresses_it() {
        let mut b = BrokerState::default();
        b.create_topic("t", 1);
        let raw = Blob::from(b"an invoice ".repeat(10_000));
        let compressed = Codec::Zstd.compress_blob(&raw);
        assert!(compressed.len() * 10 < raw.len());
        let record = Stored {
            value: compressed.clone().into(),
            codec: Some(Codec::Zstd),
            ..rec("k")
        };
        assert_eq!(b.produce("t", 0, record, None, None), Ok((0, true)));
        assert_eq!(b.produce("t", 0, rec("plain"), None, None), Ok((1, true)));
        let fetched = b.fetch("t", 0, 0, 10, false).unwrap();
        assert_eq!(fetched[0].codec, Some(Codec::Zstd));
        assert_eq!(fetched[0].value.to_vec(), compressed);
        assert_eq!(fetched[0].value().unwrap(), raw);
        assert_eq!(fetched[1].codec, None);
        assert_eq!(fetched[1].value().unwrap(), Blob::from(b"v".to_vec()));
        let corrupt = WireRecord {
            value: b"not zstd".to_vec().into(),
            ..fetched[0].clone()
        };
        assert!(corrupt.value().is_err());
    }

    #[test]
    fn expiry_rebalances_partitions_to_the_survivors() {
        let mut b = BrokerState::default();
        b.create_topic("t", 3);
        let g = b.groups.entry("g".into()).or_default();
        for (id, seen) in [("m1", 0), ("m2", 900)] {
            g.members.insert(
                id.into(),
                Member {
                    topics: vec!["t".into()],
                    session_timeout_ms: 500,
                    last_seen_ms: seen,
                    assignment: vec![],
                },
            );
        }
        b.rebalance("g");
        assert_eq!(b.groups["g"].members["m1"].assignment.len(), 2);
        // m1's session runs out after 500 ms: nothing expires before 501.
        assert_eq!(b.next_expiry_ms(), Some(501));
        assert!(b.expire_members(500).is_empty());
        let events = b.expire_members(1000);
        assert_eq!(events.len(), 1);
        let g = &b.groups["g"];
        assert_eq!(g.generation, 2);
        assert_eq!(g.members["m2"].assignment.len(), 3);
        assert_eq!(b.next_expiry_ms(), Some(1401), "m2's");
        b.groups.clear();
        assert_eq!(b.next_expiry_ms(), None, "no session, no open transaction");
    }

    fn txn_ref(b: &BrokerState, id: &str) -> TxnRef {
        let t = &b.txns[id];
        TxnRef {
            transactional_id: id.into(),
            producer_id: t.producer_id,
            epoch: t.epoch,
        }
    }

    fn keys(b: &BrokerState, read_committed: bool) -> Vec<String> {
        b.fetch("t", 0, 0, 100, read_committed)
            .unwrap()
            .into_iter()
            .map(|r| format!("{}@{}", r.key, r.offset))
            .collect()
    }

    #[test]
    fn read_committed_stops_at_the_open_transaction_and_skips_aborted_records() {
        let mut b = BrokerState::default();
        b.create_topic("t", 1);
        b.init_txn("tx", 1_000, "p");
        let t = txn_ref(&b, "tx");
        assert_eq!(
            b.produce("t", 0, rec("a"), None, Some(&t)),
            Err(BrokerError::InvalidTxnState),
            "a partition must be added first"
        );
        b.open_txn(&t, 0)
            .unwrap()
            .partitions
            .insert(("t".into(), 0));
        b.produce("t", 0, rec("a"), None, Some(&t)).unwrap();
        b.produce("t", 0, rec("plain"), None, None).unwrap();
        assert_eq!(keys(&b, true), Vec::<String>::new(), "nothing past the LSO");
        assert_eq!(keys(&b, false), vec!["a@0", "plain@1"]);
        let events = b.end_txn("tx", false);
        assert!(
            matches!(&events[..], [Event::TxnEnd { committed: false, records, markers, .. }]
            if records.len() == 1 && markers[0].offset == 2)
        );
        assert_eq!(
            keys(&b, true),
            vec!["plain@1"],
            "aborted and marker skipped"
        );
        assert_eq!(
            keys(&b, false),
            vec!["a@0", "plain@1"],
            "uncommitted reads aborted ones"
        );
        assert_eq!(
            b.readable_ends("t"),
            vec![2],
            "the trailing marker is not lag"
        );
    }

    #[test]
    fn a_commit_publishes_records_and_offsets_together() {
        let mut b = BrokerState::default();
        b.create_topic("t", 1);
        b.init_txn("tx", 1_000, "p");
        let t = txn_ref(&b, "tx");
        let open = b.open_txn(&t, 0).unwrap();
        open.partitions.insert(("t".into(), 0));
        open.offsets.insert(("g".into(), "in".into(), 0), 7);
        b.produce("t", 0, rec("a"), None, Some(&t)).unwrap();
        assert_eq!(
            b.committed("g", "in", 0),
            None,
            "offsets wait for the commit"
        );
        let events = b.end_txn("tx", true);
        assert_eq!(b.committed("g", "in", 0), Some(7));
        assert!(matches!(events[0], Event::OffsetCommit { offset: 7, .. }));
        assert_eq!(keys(&b, true), vec!["a@0"]);
    }

    #[test]
    fn a_new_epoch_fences_the_zombie_and_aborts_its_transaction() {
        let mut b = BrokerState::default();
        b.create_topic("t", 1);
        b.init_txn("tx", 1_000, "p");
        let zombie = txn_ref(&b, "tx");
        b.open_txn(&zombie, 0)
            .unwrap()
            .partitions
            .insert(("t".into(), 0));
        b.produce("t", 0, rec("a"), None, Some(&zombie)).unwrap();
        let (_, epoch, events) = b.init_txn("tx", 1_000, "p2");
        assert_eq!(epoch, 1);
        assert!(matches!(
            events[..],
            [Event::TxnEnd {
                committed: false,
                ..
            }]
        ));
        assert_eq!(
            b.produce("t", 0, rec("b"), None, Some(&zombie)),
            Err(BrokerError::ProducerFenced)
        );
        assert_eq!(
            b.open_txn(&zombie, 0).err(),
            Some(BrokerError::ProducerFenced)
        );
    }

    #[test]
    fn a_stuck_transaction_times_out_aborted_and_fenced() {
        let mut b = BrokerState::default();
        b.create_topic("t", 1);
        b.init_txn("tx", 1_000, "p");
        let t = txn_ref(&b, "tx");
        b.open_txn(&t, 100)
            .unwrap()
            .partitions
            .insert(("t".into(), 0));
        b.produce("t", 0, rec("a"), None, Some(&t)).unwrap();
        assert_eq!(
            b.next_expiry_ms(),
            Some(1_101),
            "started at 100, 1 s timeout"
        );
        assert!(b.expire_txns(1_100).is_empty(), "not yet");
        assert_eq!(b.readable_ends("t"), vec![1], "an open transaction is lag");
        assert_eq!(b.expire_txns(1_101).len(), 1);
        assert_eq!(b.next_expiry_ms(), None, "no transaction is open");
        assert_eq!(keys(&b, true), Vec::<String>::new());
        assert_eq!(b.current(&t).err(), Some(BrokerError::ProducerFenced));
    }

    #[test]
    fn offsets_an_open_transaction_holds_are_unstable_until_it_ends() {
        let mut b = BrokerState::default();
        b.create_topic("in", 1);
        b.init_txn("tx", 1_000, "p");
        let t = txn_ref(&b, "tx");
        b.open_txn(&t, 0)
            .unwrap()
            .offsets
            .insert(("g".into(), "in".into(), 0), 4);
        assert!(b.offset_pending("g", "in", 0), "a new owner must wait");
        assert!(!b.offset_pending("other", "in", 0));
        b.end_txn("tx", true);
        assert!(!b.offset_pending("g", "in", 0));
        assert_eq!(b.committed("g", "in", 0), Some(4));
    }
}
