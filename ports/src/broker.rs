//! The broker port, with Kafka semantics: keyed records with headers land on a
//! partition at an offset; consumers in a group poll assigned partitions and
//! commit offsets explicitly.

use crate::codec::Codec;
use crate::Blob;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A record to produce. The partition is chosen from the key by the adapter,
/// the way Kafka's default partitioner does (murmur2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProducerRecord {
    pub topic: String,
    pub key: String,
    #[serde(with = "crate::blob::as_byte_seq")]
    pub value: Blob,
    pub headers: Vec<(String, String)>,
}

/// Where an acknowledged record landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub partition: u32,
    pub offset: u64,
}

/// Why a produce failed after the producer's own retries.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ProduceError {
    /// Not acknowledged within the delivery timeout. It may still have been
    /// appended (the ack may have been lost).
    #[error("produce timed out: {0}")]
    Timeout(String),
    /// The record is larger than the broker's maximum message size. When
    /// `at_least`, `size` is a lower bound: the producer stopped compressing
    /// the record once its frame passed `max`.
    #[error(
        "record {}{size} bytes exceeds the maximum message size of {max} bytes",
        if *at_least { "compressed to at least " } else { "of " }
    )]
    MessageTooLarge {
        size: usize,
        max: usize,
        at_least: bool,
    },
    #[error("produce failed: {0}")]
    Fatal(String),
}

/// The broker's maximum message size: Apache Kafka's default
/// `message.max.bytes` (1 MiB), which the simulated broker enforces too.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// A record's size as a broker counts it against [`MAX_MESSAGE_BYTES`]:
/// key, value (as sent: compressed, with batch compression) and headers.
pub fn message_size(key: &str, value_bytes: usize, headers: &[(String, String)]) -> usize {
    let headers: usize = headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    key.len() + value_bytes + headers
}

/// `value`, the value of `record`, as a producer sends it: compressed by
/// `codec` when the producer compresses batches. Refused with
/// [`ProduceError::MessageTooLarge`] when the record is then over
/// [`MAX_MESSAGE_BYTES`] as a broker counts it ([`message_size`]); a
/// compressed one as soon as its frame passes the limit, with the size it
/// had reached (`at_least`). One rule for the simulated producer and the
/// real adapter's pre-check.
pub fn value_to_send(
    record: &ProducerRecord,
    value: Blob,
    codec: Option<Codec>,
) -> Result<Blob, ProduceError> {
    let around = message_size(&record.key, 0, &record.headers);
    let too_large = |size, at_least| ProduceError::MessageTooLarge {
        size,
        max: MAX_MESSAGE_BYTES,
        at_least,
    };
    let sent = match codec {
        Some(codec) => codec
            .compress_blob_within(&value, MAX_MESSAGE_BYTES.saturating_sub(around))
            .map(Blob::from)
            .map_err(|written| too_large(around + written, true))?,
        None => value,
    };
    match around + sent.len() {
        size if size > MAX_MESSAGE_BYTES => Err(too_large(size, false)),
        _ => Ok(sent),
    }
}

/// Producer settings that change delivery semantics. Adapters must apply all
/// of them explicitly rather than rely on client defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProducerConfig {
    /// Idempotent producer: the broker drops retried duplicates and rejects
    /// out-of-sequence batches, so retries neither duplicate nor reorder.
    pub idempotent: bool,
    /// Requests in flight per connection. Above 1, a retried request can land
    /// after a later one (reordering) unless the producer is idempotent.
    pub max_in_flight: u32,
    /// Resends after a failed or unacknowledged request.
    pub retries: u32,
    pub request_timeout_ms: u64,
    /// Upper bound on the whole send, retries included.
    pub delivery_timeout_ms: u64,
    /// Batch compression (Kafka's `compression.type`). The broker's maximum
    /// message size then applies to the compressed batch.
    pub compression: Option<crate::codec::Codec>,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            idempotent: false,
            max_in_flight: 5,
            retries: 3,
            request_timeout_ms: 500,
            delivery_timeout_ms: 2_000,
            compression: None,
        }
    }
}

impl ProducerConfig {
    /// Whether the settings make sense, as Kafka's producer would refuse
    /// them; the first problem, named as a scenario's `[producer]` key.
    pub fn check(&self) -> Result<(), &'static str> {
        let checks = [
            (
                (1..=100).contains(&self.max_in_flight),
                "producer.max_in_flight must be 1 to 100",
            ),
            (
                !self.idempotent || self.max_in_flight <= 5,
                "producer.max_in_flight must be at most 5 when idempotent (as Kafka requires)",
            ),
            (
                self.retries <= 10_000,
                "producer.retries must be at most 10000",
            ),
            (
                (100..=300_000).contains(&self.request_timeout_ms),
                "producer.request_timeout_ms must be 100 to 300000: a shorter one times out every send",
            ),
            (
                self.delivery_timeout_ms >= self.request_timeout_ms
                    && self.delivery_timeout_ms <= 3_600_000,
                "producer.delivery_timeout_ms must be at least request_timeout_ms and at most 3600000 (as Kafka requires)",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, message)) => Err(message),
            None => Ok(()),
        }
    }
}

#[async_trait]
pub trait Producer: Send + Sync {
    /// Send one record and wait for its acknowledgement. Headers from the
    /// current request context are the caller's business (see
    /// `blocks::publish`), not the adapter's.
    async fn send(&self, record: ProducerRecord) -> Result<Delivery, ProduceError>;
}

/// A record as a consumer sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsumerRecord {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub key: String,
    #[serde(with = "crate::blob::as_byte_seq")]
    pub value: Blob,
    pub headers: Vec<(String, String)>,
}

impl ConsumerRecord {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A committed position: `offset` is the next offset to consume, as in Kafka.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicPartitionOffset {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConsumeError {
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The group rebalanced; the commit was rejected and uncommitted records
    /// will be delivered again (possibly to another member).
    #[error("commit rejected after a rebalance: {0}")]
    CommitFailed(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsumerConfig {
    pub group: String,
    pub topics: Vec<String>,
    /// A member that does not poll for this long is removed and its
    /// partitions are handed to the others.
    pub session_timeout_ms: u64,
    pub max_poll_records: usize,
    /// Kafka's `isolation.level`: `read_committed` reads only records of
    /// committed transactions, and nothing past a partition's last stable
    /// offset (the first record of a transaction still open). Otherwise
    /// (`read_uncommitted`, Kafka's default) every record is read,
    /// aborted ones included.
    #[serde(default)]
    pub read_committed: bool,
}

/// Who a group member is now: what a transactional producer sends with the
/// offsets it commits, so the broker can refuse them from a member that was
/// fenced by a rebalance (KIP-447).
#[derive(Clone)]
pub struct GroupMetadata {
    pub group: String,
    pub member_id: String,
    pub generation: u64,
    /// The client library's own handle for it, when it has one (rdkafka's
    /// `ConsumerGroupMetadata`); the adapter that made it reads it back.
    pub handle: Option<std::sync::Arc<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for GroupMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupMetadata")
            .field("group", &self.group)
            .field("member_id", &self.member_id)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// A group member. Auto-commit is always off: offsets move only by `commit`.
#[async_trait]
pub trait Consumer: Send + Sync {
    /// Records from the assigned partitions, waiting at most `max_wait` when
    /// there are none. An empty result is normal.
    async fn poll(&mut self, max_wait: Duration) -> Result<Vec<ConsumerRecord>, ConsumeError>;
    /// Commit offsets of records this member polled. Offsets of partitions
    /// reassigned since their records were polled are not committed (that
    /// would rewind the new owner): the rest are, and the call then returns
    /// [`ConsumeError::CommitFailed`].
    async fn commit(&mut self, offsets: &[TopicPartitionOffset]) -> Result<(), ConsumeError>;
    /// The member's current identity in its group, for a transactional
    /// producer's `send_offsets`; `None` before it joined.
    fn group_metadata(&self) -> Option<GroupMetadata> {
        None
    }
    /// The first of `offsets` whose partition was reassigned since this
    /// member polled its records, by the rule [`Consumer::commit`] refuses
    /// them with. A transaction must not send such offsets: the group's
    /// metadata is the new generation's by then, so the coordinator would
    /// take them while the partition's new owner handles the same records.
    fn reassigned_since_polled(
        &self,
        offsets: &[TopicPartitionOffset],
    ) -> Option<TopicPartitionOffset>;
    /// Go back to the group's committed offsets on every assigned
    /// partition (what a transactional consumer does after an abort:
    /// Kafka's `seek` to the committed positions).
    async fn rewind(&mut self) -> Result<(), ConsumeError> {
        Err(ConsumeError::Unavailable(
            "this consumer cannot rewind".into(),
        ))
    }
}

/// Why a transactional call failed, and what the caller must do.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TxnError {
    /// Another producer with the same `transactional.id` started since
    /// (this one is a zombie), or the group moved on: stop using this
    /// producer; make a new one.
    #[error("fenced: {0}")]
    Fenced(String),
    /// The transaction cannot commit: abort it, and consume again from the
    /// committed offsets.
    #[error("transaction must abort: {0}")]
    Abortable(String),
}

/// A transactional producer (Kafka's `transactional.id`): what it produces
/// between `begin` and `commit`, and the consumer offsets it sends, become
/// visible to `read_committed` consumers together, or not at all.
#[async_trait]
pub trait TxnProducer: Send {
    /// Start a transaction (registering the producer with the broker's
    /// transaction coordinator first, which fences older producers with the
    /// same id and aborts their open transaction).
    async fn begin(&mut self) -> Result<(), TxnError>;
    /// Produce within the open transaction.
    async fn send(&mut self, record: ProducerRecord) -> Result<Delivery, TxnError>;
    /// Commit these consumer offsets with the transaction
    /// (`SendOffsetsToTransaction`).
    async fn send_offsets(
        &mut self,
        group: &GroupMetadata,
        offsets: &[TopicPartitionOffset],
    ) -> Result<(), TxnError>;
    /// Commit: the records and the offsets become visible at once.
    async fn commit(&mut self) -> Result<(), TxnError>;
    /// Abort: the records are never read by `read_committed` consumers, and
    /// the offsets are not committed.
    async fn abort(&mut self) -> Result<(), TxnError>;
}

/// Reads a partition by offset outside any consumer group: the seek a
/// consumer does to read again records it has already seen.
#[async_trait]
pub trait LogReader: Send + Sync {
    /// The records of `topic`/`partition` from `from` to `to`, inclusive.
    async fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        to: u64,
    ) -> Result<Vec<ConsumerRecord>, ConsumeError>;
}

/// A broker connection that makes producers, consumers and log readers.
pub trait Broker: Send + Sync {
    fn producer(&self, config: &ProducerConfig) -> std::sync::Arc<dyn Producer>;
    fn consumer(&self, config: &ConsumerConfig) -> Box<dyn Consumer>;
    fn reader(&self) -> std::sync::Arc<dyn LogReader>;
    /// A transactional producer with this `transactional.id`; a transaction
    /// open longer than `timeout_ms` is aborted by the broker.
    fn txn_producer(
        &self,
        transactional_id: &str,
        config: &ProducerConfig,
        timeout_ms: u64,
    ) -> Box<dyn TxnProducer>;
}

#[cfg(test)]
mod tests {
    use super::ProducerConfig;

    #[test]
    fn producer_settings_kafka_would_refuse_are_refused() {
        assert_eq!(ProducerConfig::default().check(), Ok(()));
        let zero = ProducerConfig {
            request_timeout_ms: 0,
            delivery_timeout_ms: 0,
            ..Default::default()
        };
        assert!(zero
            .check()
            .unwrap_err()
            .starts_with("producer.request_timeout_ms"));
        let short_delivery = ProducerConfig {
            delivery_timeout_ms: 100,
            ..Default::default()
        };
        assert!(short_delivery
            .check()
            .unwrap_err()
            .starts_with("producer.delivery_timeout_ms"));
        let idempotent_six = ProducerConfig {
            idempotent: true,
            max_in_flight: 6,
            ..Default::default()
        };
        assert!(idempotent_six
            .check()
            .unwrap_err()
            .contains("when idempotent"));
    }
}
