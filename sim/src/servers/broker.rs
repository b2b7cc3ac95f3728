//! The simulated broker, with Kafka semantics: topics of N partitions with
//! per-partition offsets and headers, a maximum message size, idempotent
//! producers (producer id + per-partition sequence), and consumer groups with
//! durable committed offsets and server-side eager rebalancing when members
//! join or stop heartbeating. The acknowledged log, committed offsets and
//! producer sequences survive a crash; group membership does not.

use super::{before_request, peer_name, SharedFaults};
use crate::wire::{self, b64};
use pitfall_harness::coverage;
use pitfall_harness::history::{value_repr, Event, History};
use pitfall_harness::system::BROKER;
use pitfall_ports::codec::Codec;
use pitfall_ports::TopicPartitionOffset;
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
    #[serde(with = "b64")]
    pub value: Vec<u8>,
    pub headers: Vec<(String, String)>,
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
        #[serde(with = "b64")]
        value: Vec<u8>,
        headers: Vec<(String, String)>,
        /// Producer id and sequence, for idempotent producers.
        sequence: Option<(u64, u64)>,
        /// The codec `value` is compressed with (batch compression).
        #[serde(default)]
        codec: Option<Codec>,
    },
    Fetch {
        topic: String,
        partition: u32,
        offset: u64,
        max: usize,
        group: String,
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
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerResponse {
    Partitions(u32),
    ProducerId(u64),
    Appended {
        offset: u64,
    },
    Records(Vec<WireRecord>),
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
    value: Vec<u8>,
    headers: Vec<(String, String)>,
    /// The compressed value's size, when the producer compressed the batch:
    /// the size limit applies to what came over the wire.
    wire: Option<usize>,
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
        record: Stored,
        sequence: Option<(u64, u64)>,
    ) -> Result<(u64, bool), BrokerError> {
        let size = record.key.len()
            + record.wire.unwrap_or(record.value.len())
            + record
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
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
        Ok((offset, true))
    }

    fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max: usize,
    ) -> Result<Vec<WireRecord>, BrokerError> {
        let log = self
            .logs
            .get(topic)
            .and_then(|ps| ps.get(partition as usize))
            .ok_or_else(|| BrokerError::UnknownTopic(format!("{topic}/{partition}")))?;
        Ok(log
            .iter()
            .enumerate()
            .skip(offset as usize)
            .take(max)
            .map(|(i, r)| WireRecord {
                offset: i as u64,
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r.headers.clone(),
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

/// Simulated milliseconds, for session timeouts.
fn sim_now_ms() -> u64 {
    turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64
}

#[derive(Clone)]
pub struct BrokerServer {
    pub state: Arc<Mutex<BrokerState>>,
    pub faults: SharedFaults,
    pub history: History,
}

impl BrokerServer {
    /// The host software.
    pub async fn serve(self) -> turmoil::Result {
        self.state.lock().unwrap().forget_members();
        let reaper = self.clone();
        tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let now = sim_now_ms();
                let mut state = reaper.state.lock().unwrap();
                let events = state.expire_members(now);
                let in_flight = events.iter().any(
                    |e| matches!(e, Event::Rebalance { group, .. } if state.has_uncommitted(group)),
                );
                drop(state);
                for e in events {
                    reaper.history.record(e);
                }
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
            let Some(resp) = self.handle(req, &process).await else {
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
            } => {
                if self.roll(|f| f.reorder) {
                    let delay = self.faults.lock().unwrap().draw_ms(20, 200);
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    return Some(BrokerResponse::Error(BrokerError::NotAvailable));
                }
                // Like a broker validating a compressed batch: decompress
                // it (real codecs), keep the wire size for the limit.
                let (value, wire) = match codec {
                    None => (value, None),
                    Some(codec) => {
                        let wire = value.len();
                        match codec.decompress(&value) {
                            Ok(raw) => (raw, Some(wire)),
                            Err(e) => {
                                return Some(BrokerResponse::Error(BrokerError::Corrupt(
                                    e.to_string(),
                                )))
                            }
                        }
                    }
                };
                let record = Stored {
                    key: key.clone(),
                    value,
                    headers: headers.clone(),
                    wire,
                };
                let sent = (
                    process.to_string(),
                    topic.clone(),
                    partition,
                    key.clone(),
                    record.value.len(),
                );
                let mut state = self.state.lock().unwrap();
                if state.lost_acks.remove(&sent) {
                    self.history
                        .mark(BROKER, coverage::PRODUCE_RETRIED_AFTER_LOST_ACK);
                }
                let result = state.produce(&topic, partition, record.clone(), sequence);
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
                                value: value_repr(&record.value),
                                wire_bytes: record.wire.map(|w| w as u64),
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
                mut offset,
                max,
                group,
            } => {
                let committed = self
                    .state
                    .lock()
                    .unwrap()
                    .committed(&group, &topic, partition);
                let to = redelivery_start(committed, offset, max);
                if to < offset && self.roll(|f| f.duplicate_delivery) {
                    self.history.record(Event::Rewind {
                        group: group.clone(),
                        topic: topic.clone(),
                        partition,
                        from: offset,
                        to,
                    });
                    offset = to;
                }
                let mut state = self.state.lock().unwrap();
                match state.fetch(&topic, partition, offset, max) {
                    Ok(records) => {
                        if state.serve(&group, &topic, partition, &records) {
                            self.history.mark(BROKER, coverage::DUPLICATE_DELIVERED);
                        }
                        BrokerResponse::Records(records)
                    }
                    Err(e) => BrokerResponse::Error(e),
                }
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
            BrokerRequest::Committed {
                group,
                topic,
                partition,
            } => BrokerResponse::Offset(
                self.state
                    .lock()
                    .unwrap()
                    .committed(&group, &topic, partition),
            ),
        };
        Some(resp)
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
            value: b"v".to_vec(),
            headers: vec![],
            wire: None,
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
        assert_eq!(b.produce("t", 0, rec("a"), Some((7, 0))), Ok((0, true)));
        assert_eq!(
            b.produce("t", 0, rec("a"), Some((7, 0))),
            Ok((0, false)),
            "retry is a no-op"
        );
        assert_eq!(
            b.produce("t", 0, rec("c"), Some((7, 2))),
            Err(BrokerError::OutOfOrderSequence)
        );
        assert_eq!(b.produce("t", 0, rec("b"), Some((7, 1))), Ok((1, true)));
        assert_eq!(b.end_offsets("t"), vec![2]);
        // Without a producer id the same retry is a duplicate.
        assert_eq!(b.produce("t", 0, rec("a"), None), Ok((2, true)));
        assert_eq!(b.produce("t", 0, rec("a"), None), Ok((3, true)));
    }

    #[test]
    fn oversized_records_are_refused() {
        let mut b = BrokerState::default();
        b.create_topic("t", 1);
        b.max_message_bytes = 10;
        let big = Stored {
            key: "k".into(),
            value: vec![0; 10],
            headers: vec![],
            wire: None,
        };
        assert_eq!(
            b.produce("t", 0, big.clone(), None),
            Err(BrokerError::MessageTooLarge { size: 11, max: 10 })
        );
        // A compressed batch is judged by its size on the wire.
        let compressed = Stored {
            wire: Some(5),
            ..big.clone()
        };
        assert_eq!(b.produce("t", 0, compressed, None), Ok((0, true)));
        let still_big = Stored {
            wire: Some(10),
            ..big
        };
        assert_eq!(
            b.produce("t", 0, still_big, None),
            Err(BrokerError::MessageTooLarge { size: 11, max: 10 })
        );
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
        let events = b.expire_members(1000);
        assert_eq!(events.len(), 1);
        let g = &b.groups["g"];
        assert_eq!(g.generation, 2);
        assert_eq!(g.members["m2"].assignment.len(), 3);
    }
}
