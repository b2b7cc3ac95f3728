//! The broker port on a real Kafka-compatible broker through rdkafka.
//!
//! Client settings that change delivery semantics are pinned explicitly —
//! librdkafka's defaults differ from the Java client's (idempotence off, a
//! huge in-flight limit, a CRC32 partitioner) — and reported with the run.
//! Topic and group names get the run's prefix here, so services keep their
//! logical names.

use crate::names::RunNames;
use async_trait::async_trait;
use pitfall_harness::history::{Event, History};
use pitfall_ports::codec::Codec;
use pitfall_ports::{
    value_to_send, Blob, Broker, ConsumeError, Consumer, ConsumerConfig, ConsumerRecord, Delivery,
    GroupMetadata, LogReader, ProduceError, Producer, ProducerConfig, ProducerRecord,
    TopicPartitionOffset, TxnProducer,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The broker's maximum message size (Apache Kafka's default, which
/// scripts/services.sh keeps).
pub use pitfall_ports::MAX_MESSAGE_BYTES;

/// librdkafka producer settings for a port configuration.
pub fn producer_settings(bootstrap: &str, cfg: &ProducerConfig) -> BTreeMap<String, String> {
    let mut s = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        s.insert(k.to_string(), v);
    };
    set("bootstrap.servers", bootstrap.to_string());
    set("acks", "all".into());
    set("enable.idempotence", cfg.idempotent.to_string());
    set(
        "max.in.flight.requests.per.connection",
        cfg.max_in_flight.to_string(),
    );
    set("message.send.max.retries", cfg.retries.to_string());
    set("retry.backoff.ms", "100".into());
    // The port's request timeout is the client's wait for one request's
    // answer before it retries (Java's `request.timeout.ms`, and the
    // simulation's). librdkafka's `request.timeout.ms` is only the ack
    // timeout the broker enforces; the client's own wait for a produce
    // request is the lesser of `socket.timeout.ms` (default 60 s) and what
    // is left of the batch's message timeout. Without this, a slow broker
    // never failed a send before its message timeout in real mode.
    set("request.timeout.ms", cfg.request_timeout_ms.to_string());
    set("socket.timeout.ms", cfg.request_timeout_ms.to_string());
    set("message.timeout.ms", cfg.delivery_timeout_ms.to_string());
    // librdkafka expires a queued message only when its broker thread wakes;
    // while the broker refuses connections that is at each reconnect
    // attempt, and the default backoff grows to 10 s, so a send made during
    // an outage failed seconds after the outage ended. Java's client expires
    // batches by `delivery.timeout.ms` whatever the connection does; with
    // reconnects at most half a delivery timeout apart (and at most Java's
    // default 1 s), librdkafka does too.
    set("reconnect.backoff.ms", "50".into());
    set(
        "reconnect.backoff.max.ms",
        reconnect_backoff_max_ms(cfg.delivery_timeout_ms).to_string(),
    );
    set(
        "compression.type",
        cfg.compression.map_or("none", |c| c.name()).into(),
    );
    set("partitioner", "murmur2_random".into());
    set("linger.ms", "5".into());
    // librdkafka checks this against the uncompressed record; with batch
    // compression the limit is the broker's, on the compressed batch (see
    // `KafkaProducer::send`), so the client's is raised out of the way.
    let client_max = match cfg.compression {
        None => MAX_MESSAGE_BYTES + 4096,
        Some(_) => 64 << 20,
    };
    set("message.max.bytes", client_max.to_string());
    s
}

/// The environment variable that turns on librdkafka's own debug log for
/// every client of a real run: its value is librdkafka's `debug` setting
/// (`cgrp,fetch,eos`, `all`, …). Each client is then named for its process
/// (`client.id`), and `pitfall run` prints the lines on stderr. For root
/// causes; it changes nothing a run records.
pub const RDKAFKA_DEBUG_ENV: &str = "PITFALL_RDKAFKA_DEBUG";

/// `settings` with librdkafka's debug log on, if [`RDKAFKA_DEBUG_ENV`] asks
/// for it, and the client named for `process`. Applied after the settings
/// are recorded, so the report's pinned settings stay the same.
pub(crate) fn with_diagnostics(
    settings: BTreeMap<String, String>,
    process: &str,
) -> BTreeMap<String, String> {
    let contexts = std::env::var(RDKAFKA_DEBUG_ENV).ok();
    debug_settings(settings, process, contexts.as_deref())
}

/// `settings` with librdkafka's `debug` set to `contexts` (unless empty)
/// and the client named for `process`.
fn debug_settings(
    mut settings: BTreeMap<String, String>,
    process: &str,
    contexts: Option<&str>,
) -> BTreeMap<String, String> {
    if let Some(contexts) = contexts.filter(|c| !c.is_empty()) {
        settings.insert("debug".into(), contexts.to_string());
        settings.insert("client.id".into(), process.to_string());
    }
    settings
}

/// The longest wait between reconnect attempts for a producer whose
/// delivery timeout is `delivery_timeout_ms`: half of it, within Java's
/// defaults (`reconnect.backoff.ms` 50, `reconnect.backoff.max.ms` 1000).
fn reconnect_backoff_max_ms(delivery_timeout_ms: u64) -> u64 {
    (delivery_timeout_ms / 2).clamp(50, 1_000)
}

/// Apache Kafka's default bounds on a member's session timeout
/// (`group.min.session.timeout.ms`, `group.max.session.timeout.ms`): a join
/// outside them is refused with INVALID_SESSION_TIMEOUT.
pub const GROUP_MIN_SESSION_TIMEOUT_MS: u64 = 6_000;
pub const GROUP_MAX_SESSION_TIMEOUT_MS: u64 = 300_000;

/// librdkafka consumer settings for a port configuration.
pub fn consumer_settings(
    bootstrap: &str,
    group: &str,
    cfg: &ConsumerConfig,
) -> BTreeMap<String, String> {
    let mut s = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        s.insert(k.to_string(), v);
    };
    set("bootstrap.servers", bootstrap.to_string());
    set("group.id", group.to_string());
    set("enable.auto.commit", "false".into());
    set("enable.auto.offset.store", "false".into());
    set("auto.offset.reset", "earliest".into());
    let isolation = if cfg.read_committed {
        "read_committed"
    } else {
        "read_uncommitted"
    };
    set("isolation.level", isolation.into());
    set(
        "session.timeout.ms",
        cfg.session_timeout_ms
            .clamp(GROUP_MIN_SESSION_TIMEOUT_MS, GROUP_MAX_SESSION_TIMEOUT_MS)
            .to_string(),
    );
    set("heartbeat.interval.ms", "1000".into());
    set("max.poll.interval.ms", "30000".into());
    set("partition.assignment.strategy", "range".into());
    s
}

fn client_config(settings: &BTreeMap<String, String>) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in settings {
        c.set(k, v);
    }
    c
}

/// The settings of every client a run made, by kind (`producer`,
/// `consumer`), without the per-run addresses and names: what the report
/// shows as pinned.
#[derive(Clone, Default)]
pub struct ClientLog(Arc<Mutex<BTreeMap<String, BTreeSet<Settings>>>>);

/// One client's librdkafka settings.
pub type Settings = BTreeMap<String, String>;

impl ClientLog {
    pub(crate) fn record(&self, kind: &str, settings: &BTreeMap<String, String>) {
        let mut shown = settings.clone();
        shown.remove("bootstrap.servers");
        shown.remove("group.id");
        let mut log = self.0.lock().unwrap();
        log.entry(kind.to_string()).or_default().insert(shown);
    }

    /// Kind → every distinct set of settings.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<Settings>> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
            .collect()
    }
}

/// A broker connection for one service host.
pub struct KafkaBroker {
    bootstrap: String,
    names: Arc<RunNames>,
    process: String,
    history: History,
    clients: ClientLog,
}

impl KafkaBroker {
    pub fn new(bootstrap: &str, names: Arc<RunNames>, process: &str, history: History) -> Self {
        KafkaBroker {
            bootstrap: bootstrap.to_string(),
            names,
            process: process.to_string(),
            history,
            clients: ClientLog::default(),
        }
    }

    /// Record the settings of every client this broker makes in `log`.
    pub fn with_client_log(mut self, log: ClientLog) -> Self {
        self.clients = log;
        self
    }
}

impl Broker for KafkaBroker {
    fn producer(&self, config: &ProducerConfig) -> Arc<dyn Producer> {
        let settings = producer_settings(&self.bootstrap, config);
        self.clients.record("producer", &settings);
        let settings = with_diagnostics(settings, &self.process);
        let context = ProcessContext {
            process: self.process.clone(),
        };
        let inner = client_config(&settings)
            .create_with_context(context)
            .expect("pinned producer settings are valid");
        Arc::new(KafkaProducer {
            inner,
            names: self.names.clone(),
            delivery_timeout: Duration::from_millis(config.delivery_timeout_ms),
            compression: config.compression,
        })
    }

    fn consumer(&self, config: &ConsumerConfig) -> Box<dyn Consumer> {
        let group = self.names.group(&config.group);
        let context = GroupContext {
            history: self.history.clone(),
            process: self.process.clone(),
            group: config.group.clone(),
            names: self.names.clone(),
            generation: AtomicU64::new(0),
            read_committed: config.read_committed,
        };
        let settings = consumer_settings(&self.bootstrap, &group, config);
        self.clients.record("consumer", &settings);
        let settings = with_diagnostics(settings, &self.process);
        let inner: StreamConsumer<GroupContext> = client_config(&settings)
            .create_with_context(context)
            .expect("pinned consumer settings are valid");
        let topics: Vec<String> = config.topics.iter().map(|t| self.names.topic(t)).collect();
        let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        inner
            .subscribe(&topic_refs)
            .expect("subscribing to the run's topics");
        Box::new(KafkaConsumer {
            inner: Some(inner),
            names: self.names.clone(),
            config: config.clone(),
            history: self.history.clone(),
            process: self.process.clone(),
            fetched: BTreeMap::new(),
            unresolved: Vec::new(),
        })
    }

    fn reader(&self) -> Arc<dyn LogReader> {
        Arc::new(KafkaLogReader {
            bootstrap: self.bootstrap.clone(),
            names: self.names.clone(),
        })
    }

    fn txn_producer(
        &self,
        transactional_id: &str,
        config: &ProducerConfig,
        timeout_ms: u64,
    ) -> Box<dyn TxnProducer> {
        Box::new(crate::kafka_txn::KafkaTxnProducer::new(
            &self.bootstrap,
            config,
            transactional_id,
            timeout_ms,
            self.names.clone(),
            self.history.clone(),
            &self.process,
            &self.clients,
        ))
    }
}

pub struct KafkaProducer {
    inner: FutureProducer<ProcessContext>,
    names: Arc<RunNames>,
    delivery_timeout: Duration,
    compression: Option<Codec>,
}

#[async_trait]
impl Producer for KafkaProducer {
    async fn send(&self, record: ProducerRecord) -> Result<Delivery, ProduceError> {
        let topic = self.names.topic(&record.topic);
        let mut headers = OwnedHeaders::new();
        for (k, v) in &record.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let size = record.key.len() + record.value.len();
        let value = record.value.bytes();
        if let Some(codec) = self.compression {
            // The broker's limit applies to the compressed batch. Apache
            // Kafka enforces it (MSG_SIZE_TOO_LARGE), Tansu does not, so the
            // adapter checks first with the same real codec librdkafka
            // uses, one record per batch at worst: the verdict is the same
            // on every broker.
            value_to_send(&record, Blob::from(value.clone()), Some(codec))?;
        }
        let fr = FutureRecord::to(&topic)
            .key(record.key.as_bytes())
            .payload(value.as_ref())
            .headers(headers);
        match self
            .inner
            .send(fr, Timeout::After(self.delivery_timeout))
            .await
        {
            Ok(d) => Ok(Delivery {
                partition: d.partition as u32,
                offset: d.offset as u64,
            }),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => {
                Err(ProduceError::MessageTooLarge {
                    size,
                    max: MAX_MESSAGE_BYTES,
                    at_least: false,
                })
            }
            Err((e, _)) => Err(ProduceError::Timeout(e.to_string())),
        }
    }
}

/// Tracks rebalances: a generation number and the history's view of them.
pub struct GroupContext {
    history: History,
    process: String,
    group: String,
    names: Arc<RunNames>,
    generation: AtomicU64,
    /// Whether the member reads committed records only: it then positions
    /// itself on assignment (see [`GroupContext::rebalance`]).
    read_committed: bool,
}

/// How long a `read_committed` member waits, on assignment, for a committed
/// offset that a pending transaction holds "unstable" (KIP-447): past the
/// longest such a transaction lives (its timeout, 10 s in the shop, plus
/// Apache Kafka's 10 s sweep for timed-out transactions), and within
/// `max.poll.interval.ms` (30 s), since the member polls nothing meanwhile.
const STABLE_OFFSETS_WAIT: Duration = Duration::from_secs(25);

/// How long a consumer waits to read back the offsets of a commit that
/// failed (see [`KafkaConsumer::commit_failed`]).
const COMMIT_READ_BACK_WAIT: Duration = Duration::from_secs(5);

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_line(&self.process, level, fac, log_message);
    }
}

/// The context of a producer: names its process in librdkafka's log lines.
pub struct ProcessContext {
    pub process: String,
}

impl ClientContext for ProcessContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_line(&self.process, level, fac, log_message);
    }
}

/// One librdkafka log line as a tracing event, naming the process whose
/// client wrote it (rdkafka's own forwarding does not).
fn log_line(process: &str, level: RDKafkaLogLevel, fac: &str, message: &str) {
    use RDKafkaLogLevel as L;
    match level {
        L::Emerg | L::Alert | L::Critical | L::Error => {
            tracing::error!(target: "librdkafka", "{process}: {fac} {message}")
        }
        L::Warning => tracing::warn!(target: "librdkafka", "{process}: {fac} {message}"),
        L::Notice | L::Info => tracing::info!(target: "librdkafka", "{process}: {fac} {message}"),
        L::Debug => tracing::debug!(target: "librdkafka", "{process}: {fac} {message}"),
    }
}

impl ConsumerContext for GroupContext {
    /// rdkafka's own rebalance (assign what the group gave; unassign on a
    /// revoke or an error),
    /// except that a `read_committed` member assigns explicit positions:
    /// the committed offsets, waited for while a transaction holds them
    /// pending. librdkafka (2.12 to at least 2.16) otherwise starts such a
    /// partition by `auto.offset.reset` when a rebalance lands during that
    /// wait, re-reading from the beginning; see
    /// docs/findings/librdkafka-unstable-offset-reset.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let rebalance = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if self.read_committed {
                    position_at_committed(consumer, tpl);
                }
                if let Err(e) = consumer.assign(tpl) {
                    tracing::warn!(process = %self.process, error = %e, "cannot assign");
                }
                Rebalance::Assign(tpl)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(process = %self.process, error = %e, "cannot unassign");
                }
                Rebalance::Revoke(tpl)
            }
            other => {
                // As rdkafka's own rebalance does: drop the assignment.
                let code: RDKafkaErrorCode = other.into();
                tracing::warn!(process = %self.process, error = %code, "rebalance failed");
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(process = %self.process, error = %e, "cannot unassign");
                }
                Rebalance::Error(KafkaError::Rebalance(code))
            }
        };
        self.post_rebalance(consumer, &rebalance);
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        if let Rebalance::Assign(tpl) = rebalance {
            let assigned: Vec<String> = tpl
                .elements()
                .iter()
                .map(|e| {
                    let topic = self.names.logical_topic(e.topic()).unwrap_or(e.topic());
                    format!("{topic}/{}", e.partition())
                })
                .collect();
            self.history.record(Event::Assigned {
                process: self.process.clone(),
                group: self.group.clone(),
                generation,
                partitions: assigned,
            });
        }
    }
}

/// Set each partition of `tpl` to start at its committed offset (the
/// beginning if none was committed), waiting up to [`STABLE_OFFSETS_WAIT`]
/// for offsets a pending transaction holds. A partition whose offset could
/// not be read keeps librdkafka's own lookup.
fn position_at_committed<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tpl: &mut TopicPartitionList,
) {
    let fetch = || consumer.committed_offsets(tpl.clone(), STABLE_OFFSETS_WAIT);
    // Blocking: on a tokio worker, let the runtime move its other tasks.
    let committed = match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(fetch)
        }
        _ => fetch(),
    };
    let committed = match committed {
        Ok(list) => list,
        Err(e) => {
            tracing::debug!(error = %e, "committed offsets not read; librdkafka looks them up");
            return;
        }
    };
    for e in committed.elements() {
        let start = match (e.error(), e.offset()) {
            (Ok(()), Offset::Offset(o)) => Offset::Offset(o),
            (Ok(()), Offset::Invalid) => Offset::Beginning,
            _ => continue,
        };
        let _ = tpl.set_partition_offset(e.topic(), e.partition(), start);
    }
}

pub struct KafkaConsumer {
    /// Always `Some` until dropped.
    inner: Option<StreamConsumer<GroupContext>>,
    names: Arc<RunNames>,
    config: ConsumerConfig,
    history: History,
    process: String,
    /// The rebalance generation in which each partition was last polled.
    fetched: BTreeMap<(String, u32), u64>,
    /// Commits that failed and could not be read back yet: they may have
    /// landed (see [`KafkaConsumer::commit_failed`]).
    unresolved: Vec<TopicPartitionOffset>,
}

impl KafkaConsumer {
    fn inner(&self) -> &StreamConsumer<GroupContext> {
        self.inner.as_ref().expect("present until drop")
    }
}

impl Drop for KafkaConsumer {
    /// Closing a consumer blocks until it has left its group, which can take
    /// as long as a session timeout while the broker is unreachable. Do it on
    /// a thread of its own, so a crashed (aborted) member never stalls a
    /// tokio worker.
    #[allow(clippy::disallowed_methods)] // real mode: rdkafka's close is blocking
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            let _ = std::thread::Builder::new()
                .name("kafka-consumer-close".into())
                .spawn(move || drop(inner));
        }
    }
}

fn rebalanced(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::RebalanceInProgress
                | RDKafkaErrorCode::IllegalGeneration
                | RDKafkaErrorCode::UnknownMemberId
                | RDKafkaErrorCode::FencedInstanceId
                | RDKafkaErrorCode::StaleMemberEpoch
        )
    )
}

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn poll(&mut self, max_wait: Duration) -> Result<Vec<ConsumerRecord>, ConsumeError> {
        // Wait for the first record, then take what is already buffered.
        // Each record is recorded (and its partition marked with the
        // generation it came in) as soon as it is received: the next
        // `recv` may run a rebalance callback, and a record received before
        // a rebalance must show before its `assigned` event in the history,
        // and must not be committable in the new generation.
        self.resolve_unresolved(max_wait.min(COMMIT_READ_BACK_WAIT));
        let first = match tokio::time::timeout(max_wait, self.inner().recv()).await {
            Err(_) => return Ok(Vec::new()),
            Ok(Err(e)) => return Err(ConsumeError::Unavailable(e.to_string())),
            Ok(Ok(m)) => m.detach(),
        };
        let mut out = vec![self.convert(&first)];
        while out.len() < self.config.max_poll_records {
            match tokio::time::timeout(Duration::from_millis(2), self.inner().recv()).await {
                Ok(Ok(m)) => {
                    let m = m.detach();
                    out.push(self.convert(&m));
                }
                _ => break,
            }
        }
        Ok(out)
    }

    async fn commit(&mut self, offsets: &[TopicPartitionOffset]) -> Result<(), ConsumeError> {
        let (owned, stale): (Vec<&TopicPartitionOffset>, Vec<&TopicPartitionOffset>) = offsets
            .iter()
            .partition(|o| self.polled_in_this_generation(o));
        if !owned.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for o in &owned {
                tpl.add_partition_offset(
                    &self.names.topic(&o.topic),
                    o.partition as i32,
                    Offset::Offset(o.offset as i64),
                )
                .expect("valid offset");
            }
            let consumer = self.inner();
            let result = tokio::task::block_in_place(|| consumer.commit(&tpl, CommitMode::Sync));
            let owned: Vec<TopicPartitionOffset> = owned.into_iter().cloned().collect();
            self.unresolved.retain(|u| {
                !owned
                    .iter()
                    .any(|o| (&o.topic, o.partition) == (&u.topic, u.partition))
            });
            match result {
                Ok(()) => self.record_commits(&owned),
                Err(e) => self.commit_failed(owned, e)?,
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
        let consumer = self.inner();
        let timeout = Duration::from_secs(10);
        let unavailable = |e: KafkaError| ConsumeError::Unavailable(e.to_string());
        let committed =
            tokio::task::block_in_place(|| consumer.committed(timeout)).map_err(unavailable)?;
        // Where each partition goes: its committed offset, or the beginning
        // if none was committed. A partition whose committed offset could
        // not be read (a transaction still holds it pending) fails the
        // rewind before any seek, rather than going back to the beginning;
        // the caller tries again.
        let mut targets = Vec::new();
        for e in committed.elements() {
            e.error().map_err(unavailable)?;
            let (start, to) = match e.offset() {
                Offset::Offset(o) => (Offset::Offset(o), o as u64),
                _ => (Offset::Beginning, 0),
            };
            targets.push((e.topic().to_string(), e.partition(), start, to));
        }
        for (topic, partition, start, to) in targets {
            tokio::task::block_in_place(|| consumer.seek(&topic, partition, start, timeout))
                .map_err(unavailable)?;
            // Recorded per seek, so a later failure leaves the history true.
            let logical = self.names.logical_topic(&topic).unwrap_or(&topic);
            self.history.record(Event::Rewind {
                group: self.config.group.clone(),
                topic: logical.to_string(),
                partition: partition as u32,
                from: to,
                to,
            });
        }
        Ok(())
    }

    fn reassigned_since_polled(
        &self,
        offsets: &[TopicPartitionOffset],
    ) -> Option<TopicPartitionOffset> {
        offsets
            .iter()
            .find(|o| !self.polled_in_this_generation(o))
            .cloned()
    }

    fn group_metadata(&self) -> Option<GroupMetadata> {
        let cgm = self.inner().group_metadata()?;
        Some(GroupMetadata {
            group: self.config.group.clone(),
            member_id: String::new(),
            generation: self.inner().context().generation.load(Ordering::SeqCst),
            handle: Some(Arc::new(cgm)),
        })
    }
}

impl KafkaConsumer {
    /// Whether `o`'s partition was last polled in the current rebalance
    /// generation: its records are still this member's to commit. A
    /// rebalance can run inside a poll (after some of its records) or after
    /// it; librdkafka's group metadata is then the new generation's.
    fn polled_in_this_generation(&self, o: &TopicPartitionOffset) -> bool {
        let generation = self.inner().context().generation.load(Ordering::SeqCst);
        self.fetched.get(&(o.topic.clone(), o.partition)) == Some(&generation)
    }

    fn record_commits(&self, offsets: &[TopicPartitionOffset]) {
        for o in offsets {
            self.history.record(Event::OffsetCommit {
                process: self.process.clone(),
                group: self.config.group.clone(),
                topic: o.topic.clone(),
                partition: o.partition,
                offset: o.offset,
            });
        }
    }

    /// A commit that failed may still have landed: its reply can be lost
    /// after the broker applied it, and librdkafka's retry then fails on its
    /// own (the member's session expired meanwhile, say). Read the group's
    /// offsets back: a commit the broker holds is recorded and is a success.
    /// One that cannot be read back yet is kept, and looked up again on the
    /// next poll (a later commit of its partition supersedes it).
    fn commit_failed(
        &mut self,
        offsets: Vec<TopicPartitionOffset>,
        e: KafkaError,
    ) -> Result<(), ConsumeError> {
        let failed = if rebalanced(&e) {
            ConsumeError::CommitFailed(e.to_string())
        } else {
            ConsumeError::Unavailable(e.to_string())
        };
        match self.landed(&offsets, COMMIT_READ_BACK_WAIT) {
            Some(landed) if landed.len() == offsets.len() => {
                tracing::debug!(process = %self.process, error = %e, "a failed commit had landed");
                self.record_commits(&landed);
                Ok(())
            }
            Some(landed) => {
                self.record_commits(&landed);
                Err(failed)
            }
            None => {
                self.unresolved.extend(offsets);
                Err(failed)
            }
        }
    }

    /// Of `offsets`, those the broker holds as the group's committed offsets
    /// now; `None` if they cannot be read within `timeout`.
    fn landed(
        &self,
        offsets: &[TopicPartitionOffset],
        timeout: Duration,
    ) -> Option<Vec<TopicPartitionOffset>> {
        let mut tpl = TopicPartitionList::new();
        for o in offsets {
            tpl.add_partition(&self.names.topic(&o.topic), o.partition as i32);
        }
        let consumer = self.inner();
        let committed =
            tokio::task::block_in_place(|| consumer.committed_offsets(tpl, timeout)).ok()?;
        let landed = offsets.iter().filter(|o| {
            let held = committed
                .find_partition(&self.names.topic(&o.topic), o.partition as i32)
                .map(|e| e.offset());
            held == Some(Offset::Offset(o.offset as i64))
        });
        Some(landed.cloned().collect())
    }

    /// Look up the commits whose outcome is not known yet: record those the
    /// broker holds, forget the rest.
    fn resolve_unresolved(&mut self, timeout: Duration) {
        if self.unresolved.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.unresolved);
        match self.landed(&pending, timeout) {
            Some(landed) => self.record_commits(&landed),
            None => self.unresolved = pending,
        }
    }

    fn convert(&mut self, m: &rdkafka::message::OwnedMessage) -> ConsumerRecord {
        let record = record_of(&self.names, m);
        let topic = record.topic.clone();
        let generation = self.inner().context().generation.load(Ordering::SeqCst);
        self.fetched
            .insert((topic.clone(), record.partition), generation);
        self.history.record(Event::Consume {
            process: self.process.clone(),
            group: self.config.group.clone(),
            topic,
            partition: record.partition,
            offset: record.offset,
            key: record.key.clone(),
        });
        record
    }
}

/// A message as the port's record, under its logical topic name.
fn record_of(names: &RunNames, m: &rdkafka::message::OwnedMessage) -> ConsumerRecord {
    let headers = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    ConsumerRecord {
        topic: names
            .logical_topic(m.topic())
            .unwrap_or(m.topic())
            .to_string(),
        partition: m.partition() as u32,
        offset: m.offset() as u64,
        key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
        value: Blob::from(m.payload().unwrap_or_default()),
        headers,
    }
}

/// Reads a partition by offset with a consumer of its own that is assigned
/// the partition (no group membership, no commits).
pub struct KafkaLogReader {
    bootstrap: String,
    names: Arc<RunNames>,
}

#[async_trait]
impl LogReader for KafkaLogReader {
    async fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        to: u64,
    ) -> Result<Vec<ConsumerRecord>, ConsumeError> {
        let unavailable = |e: KafkaError| ConsumeError::Unavailable(e.to_string());
        let config = ConsumerConfig {
            group: "log-reader".into(),
            topics: vec![],
            session_timeout_ms: 6_000,
            max_poll_records: 100,
            read_committed: false,
        };
        let group = self.names.group(&config.group);
        let consumer: StreamConsumer =
            client_config(&consumer_settings(&self.bootstrap, &group, &config))
                .create()
                .map_err(unavailable)?;
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(
                &self.names.topic(topic),
                partition as i32,
                Offset::Offset(from as i64),
            )
            .map_err(unavailable)?;
        consumer.assign(&assignment).map_err(unavailable)?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut out: Vec<ConsumerRecord> = Vec::new();
        let result = loop {
            if out.last().is_some_and(|r| r.offset >= to) {
                break Ok(out);
            }
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Err(_) => {
                    break Err(ConsumeError::Unavailable(format!(
                        "reading {topic}/{partition} {from}..={to}: timed out"
                    )))
                }
                Ok(Err(e)) => break Err(unavailable(e)),
                Ok(Ok(m)) if (m.offset() as u64) > to => break Ok(out),
                Ok(Ok(m)) => out.push(record_of(&self.names, &m.detach())),
            }
        };
        // Closing a client can block on the network (real mode only).
        #[allow(clippy::disallowed_methods)]
        let _ = std::thread::Builder::new()
            .name("kafka-reader-close".into())
            .spawn(move || drop(consumer));
        result
    }
}

/// Broker administration for a run: topics, the log as it stands, group lag.
pub struct KafkaAdmin {
    bootstrap: String,
    admin: AdminClient<DefaultClientContext>,
}

/// Per partition, the offsets a `read_committed` reader never gets.
pub type LogGaps = BTreeMap<u32, Vec<u64>>;

/// A record as read back from the broker's log.
#[derive(Clone, Debug)]
pub struct LoggedRecord {
    pub partition: u32,
    pub offset: u64,
    pub key: String,
    pub headers: Vec<(String, String)>,
    pub value: Vec<u8>,
    /// Milliseconds since the Unix epoch, as the broker stamped it.
    pub timestamp_ms: Option<i64>,
}

impl KafkaAdmin {
    pub fn new(bootstrap: &str) -> Result<Self, KafkaError> {
        let admin = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()?;
        Ok(KafkaAdmin {
            bootstrap: bootstrap.to_string(),
            admin,
        })
    }

    fn reader(&self, group: &str) -> Result<BaseConsumer, KafkaError> {
        self.reader_at(group, "read_committed")
    }

    fn reader_at(&self, group: &str, isolation: &str) -> Result<BaseConsumer, KafkaError> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("isolation.level", isolation)
            .create()
    }

    /// The broker addresses the cluster advertises.
    pub fn advertised(&self, timeout: Duration) -> Result<Vec<String>, KafkaError> {
        let md = self.admin.inner().fetch_metadata(None, timeout)?;
        Ok(md
            .brokers()
            .iter()
            .map(|b| format!("{}:{}", b.host(), b.port()))
            .collect())
    }

    /// Every topic the cluster has.
    pub fn topics(&self, timeout: Duration) -> Result<Vec<String>, KafkaError> {
        let md = self.admin.inner().fetch_metadata(None, timeout)?;
        Ok(md.topics().iter().map(|t| t.name().to_string()).collect())
    }

    pub async fn create_topics(
        &self,
        topics: &[String],
        partitions: u32,
    ) -> Result<(), KafkaError> {
        let new: Vec<NewTopic> = topics
            .iter()
            .map(|t| NewTopic::new(t, partitions as i32, TopicReplication::Fixed(1)))
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for r in self.admin.create_topics(&new, &opts).await? {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => {
                    return Err(KafkaError::AdminOp(code))
                        .inspect_err(|_| tracing::error!(topic = t))
                }
            }
        }
        Ok(())
    }

    pub async fn delete_topics(&self, topics: &[String]) -> Result<(), KafkaError> {
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        self.admin.delete_topics(&refs, &opts).await?;
        Ok(())
    }

    /// Each partition's (low, high) watermarks. The high one is the log's
    /// end, past any open transaction: a `read_committed` client's query
    /// answers the last stable offset instead, which an open transaction
    /// (a crashed transactional producer's, until the broker aborts it)
    /// holds back, and a drain or read-back that stopped there would miss
    /// everything after it.
    pub fn watermarks(
        &self,
        topic: &str,
        partitions: u32,
        timeout: Duration,
    ) -> Result<Vec<(i64, i64)>, KafkaError> {
        let reader = self.reader_at("pitfall-watermarks", "read_uncommitted")?;
        (0..partitions as i32)
            .map(|p| reader.fetch_watermarks(topic, p, timeout))
            .collect()
    }

    /// A group's committed offset per partition (`None` when nothing was
    /// committed).
    pub fn committed(
        &self,
        group: &str,
        topic: &str,
        partitions: u32,
        timeout: Duration,
    ) -> Result<Vec<Option<i64>>, KafkaError> {
        let reader = self.reader(group)?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            tpl.add_partition(topic, p);
        }
        let got = reader.committed_offsets(tpl, timeout)?;
        Ok((0..partitions as i32)
            .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => Some(o),
                _ => None,
            })
            .collect())
    }

    /// Whether a `read_committed` reader finds a record in `from..to` of a
    /// partition: lag behind only transaction markers and aborted records
    /// is no lag (a consumer that committed its last record's offset + 1
    /// stops short of the marker after it). Unknown (true) if the reader
    /// cannot tell within `timeout`.
    #[allow(clippy::disallowed_methods)] // real mode: a blocking read bounded by wall time
    pub fn readable_between(
        &self,
        topic: &str,
        partition: u32,
        from: i64,
        to: i64,
        timeout: Duration,
    ) -> Result<bool, KafkaError> {
        let reader = self.reader("pitfall-lag-reader")?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition as i32, Offset::Offset(from))?;
        reader.assign(&tpl)?;
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Some(m) = reader.poll(Duration::from_millis(100)) {
                return Ok(m?.offset() < to);
            }
            let passed = reader
                .position()?
                .elements()
                .iter()
                .any(|e| matches!(e.offset(), Offset::Offset(at) if at >= to));
            if passed {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Every record in a topic a `read_committed` reader gets, partition by
    /// partition, and per partition the offsets it never gets (transaction
    /// markers and aborted records): gaps a consumer steps over.
    #[allow(clippy::disallowed_methods)] // real mode: a blocking read bounded by wall time
    pub fn read_all(
        &self,
        topic: &str,
        partitions: u32,
        timeout: Duration,
    ) -> Result<(Vec<LoggedRecord>, LogGaps), KafkaError> {
        let marks = self.watermarks(topic, partitions, timeout)?;
        let reader = self.reader("pitfall-log-reader")?;
        let mut tpl = TopicPartitionList::new();
        for (p, (low, _)) in marks.iter().enumerate() {
            tpl.add_partition_offset(topic, p as i32, Offset::Offset(*low))?;
        }
        reader.assign(&tpl)?;
        let mut remaining: BTreeMap<u32, i64> = marks
            .iter()
            .enumerate()
            .filter(|(_, (low, high))| high > low)
            .map(|(p, (_, high))| (p as u32, *high))
            .collect();
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + timeout;
        while !remaining.is_empty() && std::time::Instant::now() < deadline {
            // A partition that ends with a transaction marker has no record
            // at its high watermark - 1: done once the position passed it.
            if let Ok(positions) = reader.position() {
                for e in positions.elements() {
                    if let Offset::Offset(at) = e.offset() {
                        let p = e.partition() as u32;
                        if remaining.get(&p).is_some_and(|high| at >= *high) {
                            remaining.remove(&p);
                        }
                    }
                }
            }
            let Some(m) = reader.poll(Duration::from_millis(200)) else {
                continue;
            };
            let m = m?;
            let partition = m.partition() as u32;
            out.push(LoggedRecord {
                partition,
                offset: m.offset() as u64,
                key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                headers: m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| {
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                value: m.payload().unwrap_or_default().to_vec(),
                timestamp_ms: m.timestamp().to_millis(),
            });
            if let Some(high) = remaining.get(&partition) {
                if m.offset() + 1 >= *high {
                    remaining.remove(&partition);
                }
            }
        }
        if let Some((p, high)) = remaining.first_key_value() {
            // A partial log would be checked as if it were the whole one.
            tracing::warn!(
                topic,
                partition = p,
                high,
                "the log was not read to its end"
            );
            return Err(KafkaError::Global(RDKafkaErrorCode::OperationTimedOut));
        }
        let mut gaps = LogGaps::new();
        for (p, (low, high)) in marks.iter().enumerate() {
            let seen: BTreeSet<u64> = out
                .iter()
                .filter(|r| r.partition == p as u32)
                .map(|r| r.offset)
                .collect();
            let missing: Vec<u64> = (*low as u64..*high as u64)
                .filter(|o| !seen.contains(o))
                .collect();
            if !missing.is_empty() {
                gaps.insert(p as u32, missing);
            }
        }
        Ok((out, gaps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session_of(requested_ms: u64) -> String {
        let cfg = ConsumerConfig {
            group: "g".into(),
            topics: vec![],
            session_timeout_ms: requested_ms,
            max_poll_records: 10,
            read_committed: false,
        };
        consumer_settings("b:1", "g", &cfg)["session.timeout.ms"].clone()
    }

    #[test]
    fn debug_settings_name_the_client_and_leave_the_rest() {
        let base = producer_settings("b:1", &ProducerConfig::default());
        assert_eq!(debug_settings(base.clone(), "payments", None), base);
        assert_eq!(debug_settings(base.clone(), "payments", Some("")), base);
        let on = debug_settings(base.clone(), "payments", Some("cgrp,eos"));
        assert_eq!(on["debug"], "cgrp,eos");
        assert_eq!(on["client.id"], "payments");
        assert_eq!(on.len(), base.len() + 2);
    }

    #[test]
    fn session_timeouts_sit_within_apache_kafkas_group_bounds() {
        assert_eq!(session_of(2_000), "6000");
        assert_eq!(session_of(10_000), "10000");
        assert_eq!(session_of(900_000), "300000");
    }

    #[test]
    fn every_producer_waits_for_all_replicas_and_pins_idempotence() {
        for idempotent in [false, true] {
            let cfg = ProducerConfig {
                idempotent,
                ..ProducerConfig::default()
            };
            let s = producer_settings("b:1", &cfg);
            assert_eq!(s["acks"], "all");
            assert_eq!(s["enable.idempotence"], idempotent.to_string());
        }
    }

    #[test]
    fn reconnects_come_often_enough_to_expire_sends_by_their_delivery_timeout() {
        let backoff_of = |delivery_timeout_ms| {
            let cfg = ProducerConfig {
                delivery_timeout_ms,
                ..ProducerConfig::default()
            };
            producer_settings("b:1", &cfg)["reconnect.backoff.max.ms"].clone()
        };
        assert_eq!(backoff_of(500), "250");
        assert_eq!(backoff_of(2_000), "1000");
        assert_eq!(backoff_of(120_000), "1000");
        assert_eq!(backoff_of(60), "50");
    }
}
