//! The broker port over turmoil TCP.
//!
//! The producer models the Kafka client's delivery semantics: the key picks
//! the partition by murmur2; at most `max_in_flight` sends are outstanding,
//! counted in send order, and a send waiting to retry keeps its place, so with
//! one in flight retries keep order and with more a later send can overtake.
//! Without idempotence, a retry after a lost ack appends a duplicate. With it,
//! each send carries a producer id and per-partition sequence that the broker
//! checks, which prevents both duplicates and reordering.
//!
//! The consumer is a group member: it joins, fetches its assigned partitions
//! from the committed offsets, heartbeats from `poll`, and rejoins when the
//! group rebalances.
//!
//! The transactional producer speaks to the broker's transaction
//! coordinator as Kafka's client does: InitProducerId with its
//! `transactional.id` (which fences its predecessors), AddPartitionsToTxn
//! before a partition's first record, idempotent sends, TxnOffsetCommit with
//! the consumer's group metadata, and EndTxn.

use super::REQUEST_TIMEOUT;
use crate::servers::broker::{
    BrokerError, BrokerRequest, BrokerResponse, TxnRef, WireRecord, PORT,
};
use crate::wire::{self, CallError, Conn};
use async_trait::async_trait;
use pitfall_harness::history::{Event, History};
use pitfall_ports::{
    value_to_send, Blob, Broker, ConsumeError, Consumer, ConsumerConfig, ConsumerRecord, Delivery,
    GroupMetadata, LogReader, ProduceError, Producer, ProducerConfig, ProducerRecord,
    TopicPartitionOffset, TxnError, TxnProducer,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = 0x9747_b28c ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's default partition for a key: `toPositive(murmur2(key)) % n`.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) as u32) & 0x7fff_ffff) % partitions
}

/// A broker client for one host.
pub struct SimBroker {
    addr: String,
    process: String,
    history: History,
}

impl SimBroker {
    pub fn new(broker_host: &str, process: &str, history: History) -> Self {
        SimBroker {
            addr: format!("{broker_host}:{PORT}"),
            process: process.to_string(),
            history,
        }
    }
}

impl Broker for SimBroker {
    fn producer(&self, config: &ProducerConfig) -> Arc<dyn Producer> {
        Arc::new(SimProducer {
            addr: self.addr.clone(),
            config: config.clone(),
            state: Mutex::new(ProducerState::default()),
            turn: Notify::new(),
        })
    }

    fn consumer(&self, config: &ConsumerConfig) -> Box<dyn Consumer> {
        Box::new(SimConsumer {
            addr: self.addr.clone(),
            process: self.process.clone(),
            history: self.history.clone(),
            config: config.clone(),
            conn: None,
            member: None,
            assignment: Vec::new(),
            positions: BTreeMap::new(),
            last_heartbeat: None,
            next_partition: 0,
            fetched_since_join: BTreeSet::new(),
        })
    }

    fn reader(&self) -> Arc<dyn LogReader> {
        Arc::new(SimLogReader {
            addr: self.addr.clone(),
        })
    }

    fn txn_producer(
        &self,
        transactional_id: &str,
        config: &ProducerConfig,
        timeout_ms: u64,
    ) -> Box<dyn TxnProducer> {
        Box::new(SimTxnProducer {
            addr: self.addr.clone(),
            transactional_id: transactional_id.to_string(),
            timeout_ms,
            config: config.clone(),
            conn: None,
            id: None,
            partitions: BTreeMap::new(),
            added: BTreeSet::new(),
            next_sequence: BTreeMap::new(),
            reinit: false,
        })
    }
}

/// Reads a partition by offset on a connection of its own, outside any
/// group (so no injected redelivery applies).
pub struct SimLogReader {
    addr: String,
}

#[async_trait]
impl LogReader for SimLogReader {
    async fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        to: u64,
    ) -> Result<Vec<ConsumerRecord>, ConsumeError> {
        let mut conn = wire::connect(&self.addr, REQUEST_TIMEOUT)
            .await
            .map_err(down)?;
        let mut out = Vec::new();
        let mut offset = from;
        while offset <= to {
            let req = BrokerRequest::Fetch {
                topic: topic.to_string(),
                partition,
                offset,
                max: (to - offset + 1).min(100) as usize,
                group: String::new(),
                read_committed: false,
            };
            let records = match wire::call(&mut conn, &req, REQUEST_TIMEOUT)
                .await
                .map_err(down)?
            {
                BrokerResponse::Records(r) if !r.is_empty() => r,
                BrokerResponse::Records(_) => {
                    return Err(down(format!(
                        "{topic}/{partition} ends before offset {offset}"
                    )))
                }
                other => return Err(down(format!("unexpected fetch reply {other:?}"))),
            };
            for r in records.into_iter().filter(|r| r.offset <= to) {
                offset = r.offset + 1;
                out.push(ConsumerRecord {
                    topic: topic.to_string(),
                    partition,
                    offset: r.offset,
                    value: r.value().map_err(down)?,
                    key: r.key,
                    headers: r.headers,
                });
            }
        }
        Ok(out)
    }
}

#[derive(Default)]
struct ProducerState {
    partitions: BTreeMap<String, u32>,
    /// Sends not yet finished, by ticket (send order).
    pending: BTreeSet<u64>,
    next_ticket: u64,
    producer_id: Option<u64>,
    next_sequence: BTreeMap<(String, u32), u64>,
    pool: Vec<Conn>,
}

pub struct SimProducer {
    addr: String,
    config: ProducerConfig,
    state: Mutex<ProducerState>,
    turn: Notify,
}

fn timed_out(what: &str) -> ProduceError {
    ProduceError::Timeout(format!("{what} within the delivery timeout"))
}

impl SimProducer {
    async fn request(&self, req: &BrokerRequest) -> Result<BrokerResponse, CallError> {
        let pooled = self.state.lock().unwrap().pool.pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => wire::connect(&self.addr, REQUEST_TIMEOUT).await?,
        };
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        let resp = wire::call(&mut conn, req, timeout).await?;
        self.state.lock().unwrap().pool.push(conn);
        Ok(resp)
    }

    async fn partition(
        &self,
        topic: &str,
        key: &str,
        deadline: Instant,
    ) -> Result<u32, ProduceError> {
        loop {
            if let Some(n) = self.state.lock().unwrap().partitions.get(topic) {
                return Ok(partition_for_key(key.as_bytes(), *n));
            }
            match self
                .request(&BrokerRequest::Metadata {
                    topic: topic.into(),
                })
                .await
            {
                Ok(BrokerResponse::Partitions(n)) => {
                    self.state
                        .lock()
                        .unwrap()
                        .partitions
                        .insert(topic.into(), n);
                }
                Ok(BrokerResponse::Error(BrokerError::UnknownTopic(t))) => {
                    return Err(ProduceError::Fatal(format!("unknown topic {t}")))
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
            if Instant::now() >= deadline {
                return Err(timed_out("no metadata"));
            }
        }
    }

    /// Wait until this send is among the first `max_in_flight` unfinished.
    async fn wait_turn(&self, ticket: u64, deadline: Instant) -> Result<(), ProduceError> {
        loop {
            let notified = self.turn.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let in_window = {
                let s = self.state.lock().unwrap();
                s.pending
                    .iter()
                    .take(self.config.max_in_flight.max(1) as usize)
                    .any(|t| *t == ticket)
            };
            if in_window {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(timed_out("no turn to send"));
            }
        }
    }

    /// The (producer id, sequence) for this send: kept while the producer id
    /// is current, reassigned after the producer was reset.
    async fn sequence(
        &self,
        current: Option<(u64, u64)>,
        topic: &str,
        partition: u32,
    ) -> Result<(u64, u64), CallError> {
        let pid = self.state.lock().unwrap().producer_id;
        let pid = match pid {
            Some(pid) => pid,
            None => match self.request(&BrokerRequest::InitProducer).await? {
                BrokerResponse::ProducerId(pid) => {
                    let mut s = self.state.lock().unwrap();
                    if s.producer_id.is_none() {
                        s.producer_id = Some(pid);
                        s.next_sequence.clear();
                    }
                    s.producer_id.expect("just set")
                }
                other => return Err(CallError::NoReply(format!("unexpected reply {other:?}"))),
            },
        };
        if let Some((p, seq)) = current {
            if p == pid {
                return Ok((p, seq));
            }
        }
        let mut s = self.state.lock().unwrap();
        let next = s
            .next_sequence
            .entry((topic.to_string(), partition))
            .or_insert(0);
        let seq = *next;
        *next += 1;
        Ok((pid, seq))
    }

    async fn deliver(
        &self,
        ticket: u64,
        mut record: ProducerRecord,
        deadline: Instant,
    ) -> Result<Delivery, ProduceError> {
        // Batch compression, with the real codec: what goes over the wire.
        // The record's own value is not needed after this.
        let value = std::mem::take(&mut record.value);
        let wire_value = value_to_send(&record, value, self.config.compression)?;
        let partition = self.partition(&record.topic, &record.key, deadline).await?;
        let mut sequence = None;
        let mut failures = 0;
        loop {
            self.wait_turn(ticket, deadline).await?;
            let outcome = if self.config.idempotent {
                match self.sequence(sequence, &record.topic, partition).await {
                    Ok(s) => {
                        sequence = Some(s);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            } else {
                Ok(())
            };
            let outcome = match outcome {
                Ok(()) => {
                    self.request(&BrokerRequest::Produce {
                        topic: record.topic.clone(),
                        partition,
                        key: record.key.clone(),
                        value: wire_value.clone(),
                        headers: record.headers.clone(),
                        sequence,
                        codec: self.config.compression,
                        txn: None,
                    })
                    .await
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(BrokerResponse::Appended { offset }) => {
                    return Ok(Delivery { partition, offset })
                }
                Ok(BrokerResponse::Error(BrokerError::MessageTooLarge { size, max })) => {
                    return Err(ProduceError::MessageTooLarge {
                        size,
                        max,
                        at_least: false,
                    })
                }
                Ok(BrokerResponse::Error(BrokerError::UnknownTopic(t))) => {
                    return Err(ProduceError::Fatal(format!("unknown topic {t}")))
                }
                Ok(BrokerResponse::Error(BrokerError::OutOfOrderSequence)) => {
                    // An earlier send of ours is still pending; not a failure.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                _ => {
                    failures += 1;
                    if failures > self.config.retries {
                        return Err(ProduceError::Timeout(format!(
                            "gave up after {failures} attempts"
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            if Instant::now() >= deadline {
                return Err(timed_out("not acknowledged"));
            }
        }
    }
}

#[async_trait]
impl Producer for SimProducer {
    async fn send(&self, record: ProducerRecord) -> Result<Delivery, ProduceError> {
        let deadline = Instant::now() + Duration::from_millis(self.config.delivery_timeout_ms);
        let ticket = {
            let mut s = self.state.lock().unwrap();
            let t = s.next_ticket;
            s.next_ticket += 1;
            s.pending.insert(t);
            t
        };
        let result = self.deliver(ticket, record, deadline).await;
        {
            let mut s = self.state.lock().unwrap();
            s.pending.remove(&ticket);
            if result.is_err() && self.config.idempotent {
                // A sequence that never landed leaves a gap the broker will
                // never fill: start over with a new producer id.
                s.producer_id = None;
            }
        }
        self.turn.notify_waiters();
        result
    }
}

/// The producer's own check of a record against the broker's maximum
/// message size, before it is sent, as Kafka's clients do (librdkafka's
/// `MSG_SIZE_TOO_LARGE`, the Java producer's `RecordTooLargeException`, and
/// the real adapter for a compressed batch): a record the broker would
/// reject fails at once, without crossing the network. The size is counted
/// as the broker counts it, on the value as sent (compressed, with a codec).
/// How often `poll` heartbeats.
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(300);
/// Pause between looks for a member with nothing assigned, and between
/// asks for an unstable committed offset.
const FETCH_PAUSE: Duration = Duration::from_millis(50);

pub struct SimConsumer {
    addr: String,
    process: String,
    history: History,
    config: ConsumerConfig,
    conn: Option<Conn>,
    /// Member id and generation.
    member: Option<(String, u64)>,
    assignment: Vec<(String, u32)>,
    positions: BTreeMap<(String, u32), u64>,
    last_heartbeat: Option<Instant>,
    next_partition: usize,
    /// Partitions fetched from since the last (re)join: the only ones whose
    /// offsets this member may commit.
    fetched_since_join: BTreeSet<(String, u32)>,
}

fn down(e: impl std::fmt::Display) -> ConsumeError {
    ConsumeError::Unavailable(e.to_string())
}

impl SimConsumer {
    async fn call(&mut self, req: &BrokerRequest) -> Result<BrokerResponse, ConsumeError> {
        self.call_waiting(req, Duration::ZERO).await
    }

    /// [`Self::call`] for a request the broker may hold up to `wait`.
    async fn call_waiting(
        &mut self,
        req: &BrokerRequest,
        wait: Duration,
    ) -> Result<BrokerResponse, ConsumeError> {
        if self.conn.is_none() {
            self.conn = Some(
                wire::connect(&self.addr, REQUEST_TIMEOUT)
                    .await
                    .map_err(down)?,
            );
        }
        let conn = self.conn.as_mut().expect("connected");
        match wire::call(conn, req, REQUEST_TIMEOUT + wait).await {
            Ok(resp) => Ok(resp),
            Err(e) => {
                self.conn = None;
                Err(down(e))
            }
        }
    }

    /// Whether `o`'s partition was fetched from since the last (re)join:
    /// its records are still this member's to commit.
    fn polled_since_join(&self, o: &TopicPartitionOffset) -> bool {
        self.fetched_since_join
            .contains(&(o.topic.clone(), o.partition))
    }

    /// Join (or rejoin) the group and reset positions to committed offsets.
    async fn join(&mut self) -> Result<(), ConsumeError> {
        let member_id = self.member.as_ref().map(|(id, _)| id.clone());
        let resp = self
            .call(&BrokerRequest::Join {
                group: self.config.group.clone(),
                member_id,
                topics: self.config.topics.clone(),
                session_timeout_ms: self.config.session_timeout_ms,
            })
            .await?;
        let BrokerResponse::Joined {
            member_id,
            generation,
            assignment,
        } = resp
        else {
            return Err(down(format!("unexpected join reply {resp:?}")));
        };
        self.positions.clear();
        self.fetched_since_join.clear();
        for (topic, partition) in &assignment {
            let offset = self.committed(topic, *partition).await?.unwrap_or(0);
            self.positions.insert((topic.clone(), *partition), offset);
        }
        self.history.record(Event::Assigned {
            process: self.process.clone(),
            group: self.config.group.clone(),
            generation,
            partitions: assignment.iter().map(|(t, p)| format!("{t}/{p}")).collect(),
        });
        self.member = Some((member_id, generation));
        self.assignment = assignment;
        self.last_heartbeat = Some(Instant::now());
        Ok(())
    }

    /// The group's committed offset of a partition, waiting while an open
    /// transaction is about to move it (a stable offset fetch).
    async fn committed(
        &mut self,
        topic: &str,
        partition: u32,
    ) -> Result<Option<u64>, ConsumeError> {
        let req = BrokerRequest::Committed {
            group: self.config.group.clone(),
            topic: topic.to_string(),
            partition,
        };
        loop {
            match self.call(&req).await? {
                BrokerResponse::Offset(o) => return Ok(o),
                BrokerResponse::Error(BrokerError::UnstableOffsetCommit) => {
                    tokio::time::sleep(FETCH_PAUSE).await;
                }
                other => return Err(down(format!("unexpected reply {other:?}"))),
            }
        }
    }

    async fn heartbeat(&mut self) -> Result<(), ConsumeError> {
        let due = self
            .last_heartbeat
            .is_none_or(|t| t.elapsed() >= HEARTBEAT_INTERVAL);
        let Some((member_id, generation)) = self.member.clone() else {
            return self.join().await;
        };
        if !due {
            return Ok(());
        }
        let resp = self
            .call(&BrokerRequest::Heartbeat {
                group: self.config.group.clone(),
                member_id,
                generation,
            })
            .await?;
        self.last_heartbeat = Some(Instant::now());
        match resp {
            BrokerResponse::Done => Ok(()),
            BrokerResponse::Error(BrokerError::UnknownMember) => {
                self.member = None;
                self.join().await
            }
            _ => self.join().await,
        }
    }

    /// One fetch of the whole assignment, starting after the partition
    /// that last had records (so none starves), waiting up to `max_wait`
    /// on the broker for records to arrive.
    async fn fetch_round(
        &mut self,
        max_wait: Duration,
    ) -> Result<Vec<ConsumerRecord>, ConsumeError> {
        let n = self.assignment.len();
        if n == 0 {
            tokio::time::sleep(max_wait.min(FETCH_PAUSE)).await;
            return Ok(Vec::new());
        }
        let parts: Vec<(String, u32, u64)> = (0..n)
            .map(|i| {
                let (topic, partition) = self.assignment[(self.next_partition + i) % n].clone();
                let offset = self
                    .positions
                    .get(&(topic.clone(), partition))
                    .copied()
                    .unwrap_or(0);
                (topic, partition, offset)
            })
            .collect();
        let req = BrokerRequest::FetchMany {
            parts: parts.clone(),
            max: self.config.max_poll_records,
            group: self.config.group.clone(),
            read_committed: self.config.read_committed,
            max_wait_ms: max_wait.as_millis() as u64,
        };
        let resp = self.call_waiting(&req, max_wait).await?;
        let (part, records) = match resp {
            BrokerResponse::Fetched { part, records } => (part, records),
            other => return Err(down(format!("unexpected fetch reply {other:?}"))),
        };
        let Some(last) = records.last() else {
            return Ok(Vec::new());
        };
        let values = records
            .iter()
            .map(WireRecord::value)
            .collect::<Result<Vec<_>, _>>()
            .map_err(down)?;
        let (topic, partition, _) = parts[part].clone();
        self.positions
            .insert((topic.clone(), partition), last.offset + 1);
        self.fetched_since_join.insert((topic.clone(), partition));
        self.next_partition = (self.next_partition + part + 1) % n;
        Ok(records
            .into_iter()
            .zip(values)
            .map(|(r, value)| {
                self.history.record(Event::Consume {
                    process: self.process.clone(),
                    group: self.config.group.clone(),
                    topic: topic.clone(),
                    partition,
                    offset: r.offset,
                    key: r.key.clone(),
                });
                ConsumerRecord {
                    topic: topic.clone(),
                    partition,
                    offset: r.offset,
                    key: r.key,
                    value,
                    headers: r.headers,
                }
            })
            .collect())
    }
}

#[async_trait]
impl Consumer for SimConsumer {
    async fn poll(&mut self, max_wait: Duration) -> Result<Vec<ConsumerRecord>, ConsumeError> {
        let deadline = Instant::now() + max_wait;
        loop {
            self.heartbeat().await?;
            // Wait on the broker, but not past the next heartbeat.
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(HEARTBEAT_INTERVAL);
            let records = self.fetch_round(wait).await?;
            if !records.is_empty() || Instant::now() >= deadline {
                return Ok(records);
            }
        }
    }

    async fn commit(&mut self, offsets: &[TopicPartitionOffset]) -> Result<(), ConsumeError> {
        let Some((member_id, generation)) = self.member.clone() else {
            return Err(ConsumeError::CommitFailed("not a group member".into()));
        };
        // Offsets read before a rebalance may be behind what the partition's
        // new owner already committed; committing them would rewind the group.
        // Commit the rest, and report the stale ones as refused.
        let (owned, stale): (Vec<TopicPartitionOffset>, Vec<TopicPartitionOffset>) = offsets
            .iter()
            .cloned()
            .partition(|o| self.polled_since_join(o));
        if !owned.is_empty() {
            let resp = self
                .call(&BrokerRequest::Commit {
                    group: self.config.group.clone(),
                    member_id,
                    generation,
                    offsets: owned,
                })
                .await?;
            if resp != BrokerResponse::Done {
                // Fenced: rejoin on the next poll, from the committed offsets.
                self.last_heartbeat = None;
                return Err(ConsumeError::CommitFailed(format!("{resp:?}")));
            }
        }
        match stale.first() {
            None => Ok(()),
            Some(o) => Err(ConsumeError::CommitFailed(format!(
                "{}/{} was reassigned since its records were delivered",
                o.topic, o.partition
            ))),
        }
    }

    async fn rewind(&mut self) -> Result<(), ConsumeError> {
        for (topic, partition) in self.assignment.clone() {
            let to = self.committed(&topic, partition).await?.unwrap_or(0);
            let key = (topic.clone(), partition);
            let from = self.positions.get(&key).copied().unwrap_or(0);
            if from > to {
                self.history.record(Event::Rewind {
                    group: self.config.group.clone(),
                    topic,
                    partition,
                    from,
                    to,
                });
            }
            self.positions.insert(key, to);
        }
        Ok(())
    }

    fn reassigned_since_polled(
        &self,
        offsets: &[TopicPartitionOffset],
    ) -> Option<TopicPartitionOffset> {
        offsets.iter().find(|o| !self.polled_since_join(o)).cloned()
    }

    fn group_metadata(&self) -> Option<GroupMetadata> {
        let (member_id, generation) = self.member.clone()?;
        Some(GroupMetadata {
            group: self.config.group.clone(),
            member_id,
            generation,
            handle: None,
        })
    }
}

/// A transactional producer: one request at a time, each retried on its
/// own connection until the delivery timeout.
pub struct SimTxnProducer {
    addr: String,
    transactional_id: String,
    timeout_ms: u64,
    config: ProducerConfig,
    conn: Option<Conn>,
    /// The producer id and epoch the coordinator gave, once registered.
    id: Option<TxnRef>,
    partitions: BTreeMap<String, u32>,
    /// Partitions added to the open transaction.
    added: BTreeSet<(String, u32)>,
    next_sequence: BTreeMap<(String, u32), u64>,
    /// A send failed, so its sequence may never have reached the broker:
    /// register again (a new epoch restarts the sequences) before the next
    /// transaction, as Kafka's producer bumps its epoch (KIP-360).
    reinit: bool,
}

/// What a broker error means for a transaction.
fn txn_error(e: BrokerError) -> TxnError {
    match e {
        BrokerError::ProducerFenced => {
            TxnError::Fenced("a newer producer has this transactional.id".into())
        }
        other => TxnError::Abortable(format!("{other:?}")),
    }
}

impl SimTxnProducer {
    /// Send `req` until the broker answers it or the delivery timeout ends.
    /// A request whose answer was lost is sent again: every transactional
    /// request is safe to repeat (sends carry their sequence).
    async fn request(&mut self, req: &BrokerRequest) -> Result<BrokerResponse, TxnError> {
        let deadline = Instant::now() + Duration::from_millis(self.config.delivery_timeout_ms);
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        loop {
            if self.conn.is_none() {
                self.conn = wire::connect(&self.addr, REQUEST_TIMEOUT).await.ok();
            }
            if let Some(conn) = self.conn.as_mut() {
                match wire::call(conn, req, timeout).await {
                    Ok(BrokerResponse::Error(
                        BrokerError::NotAvailable | BrokerError::OutOfOrderSequence,
                    )) => {}
                    Ok(resp) => return Ok(resp),
                    Err(_) => self.conn = None,
                }
            }
            if Instant::now() >= deadline {
                return Err(TxnError::Abortable("the broker did not answer".into()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn done(&mut self, req: &BrokerRequest) -> Result<(), TxnError> {
        match self.request(req).await? {
            BrokerResponse::Done => Ok(()),
            BrokerResponse::Error(e) => Err(txn_error(e)),
            other => Err(TxnError::Abortable(format!("unexpected reply {other:?}"))),
        }
    }

    fn id(&self) -> Result<TxnRef, TxnError> {
        self.id
            .clone()
            .ok_or_else(|| TxnError::Abortable("no transaction begun".into()))
    }

    async fn partition_of(&mut self, topic: &str, key: &str) -> Result<u32, TxnError> {
        if let Some(n) = self.partitions.get(topic) {
            return Ok(partition_for_key(key.as_bytes(), *n));
        }
        let req = BrokerRequest::Metadata {
            topic: topic.into(),
        };
        match self.request(&req).await? {
            BrokerResponse::Partitions(n) => {
                self.partitions.insert(topic.into(), n);
                Ok(partition_for_key(key.as_bytes(), n))
            }
            BrokerResponse::Error(e) => Err(txn_error(e)),
            other => Err(TxnError::Abortable(format!("unexpected reply {other:?}"))),
        }
    }

    /// EndTxn, and forget the transaction's partitions.
    async fn end(&mut self, commit: bool) -> Result<(), TxnError> {
        let txn = self.id()?;
        let result = self.done(&BrokerRequest::EndTxn { txn, commit }).await;
        self.added.clear();
        result
    }
}

#[async_trait]
impl TxnProducer for SimTxnProducer {
    async fn begin(&mut self) -> Result<(), TxnError> {
        if self.id.is_none() || std::mem::take(&mut self.reinit) {
            let req = BrokerRequest::InitTxn {
                transactional_id: self.transactional_id.clone(),
                timeout_ms: self.timeout_ms,
            };
            match self.request(&req).await? {
                BrokerResponse::ProducerEpoch { producer_id, epoch } => {
                    self.id = Some(TxnRef {
                        transactional_id: self.transactional_id.clone(),
                        producer_id,
                        epoch,
                    });
                    self.next_sequence.clear();
                }
                other => return Err(TxnError::Abortable(format!("unexpected reply {other:?}"))),
            }
        }
        self.added.clear();
        Ok(())
    }

    async fn send(&mut self, record: ProducerRecord) -> Result<Delivery, TxnError> {
        let txn = self.id()?;
        let partition = self.partition_of(&record.topic, &record.key).await?;
        let tp = (record.topic.clone(), partition);
        if !self.added.contains(&tp) {
            let req = BrokerRequest::AddPartitions {
                txn: txn.clone(),
                partitions: vec![tp.clone()],
            };
            self.done(&req).await?;
            self.added.insert(tp.clone());
        }
        let next = self.next_sequence.entry(tp).or_insert(0);
        let sequence = (txn.producer_id, *next);
        *next += 1;
        let value = match self.config.compression {
            Some(codec) => Blob::from(codec.compress_blob(&record.value)),
            None => record.value,
        };
        let req = BrokerRequest::Produce {
            topic: record.topic,
            partition,
            key: record.key,
            value,
            headers: record.headers,
            sequence: Some(sequence),
            codec: self.config.compression,
            txn: Some(txn),
        };
        let result = match self.request(&req).await {
            Ok(BrokerResponse::Appended { offset }) => Ok(Delivery { partition, offset }),
            Ok(BrokerResponse::Error(e)) => Err(txn_error(e)),
            Ok(other) => Err(TxnError::Abortable(format!("unexpected reply {other:?}"))),
            Err(e) => Err(e),
        };
        self.reinit |= result.is_err();
        result
    }

    async fn send_offsets(
        &mut self,
        group: &GroupMetadata,
        offsets: &[TopicPartitionOffset],
    ) -> Result<(), TxnError> {
        let req = BrokerRequest::TxnOffsets {
            txn: self.id()?,
            group: group.group.clone(),
            member_id: group.member_id.clone(),
            generation: group.generation,
            offsets: offsets.to_vec(),
        };
        self.done(&req).await
    }

    async fn commit(&mut self) -> Result<(), TxnError> {
        self.end(true).await
    }

    async fn abort(&mut self) -> Result<(), TxnError> {
        self.end(false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Vectors from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    proptest::proptest! {
        #[test]
        fn partition_is_in_range_and_stable(key: Vec<u8>, n in 1u32..64) {
            let p = partition_for_key(&key, n);
            proptest::prop_assert!(p < n);
            proptest::prop_assert_eq!(p, partition_for_key(&key, n));
        }
    }
}
