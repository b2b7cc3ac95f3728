//! The consumer loop (pitfall 5): poll, apply each record's side effect in a
//! DB transaction, then commit the offsets. The idempotency strategy decides
//! what, if anything, stops a redelivered or re-produced event from applying
//! twice:
//!
//! - `naive`: nothing;
//! - `dedupe-offset`: a marker keyed by topic-partition-offset, written in the
//!   effect's transaction — stops redelivery of the same record only;
//! - `dedupe-event-id`: a marker keyed by the event's own identity, written in
//!   the effect's transaction — also stops the same event at a new offset.
//!
//! While a record is handled, its request context (from the headers) is the
//! current one, so anything the handler produces carries it on.

use crate::backoff::Backoff;
use async_trait::async_trait;
use pitfall_ports::context::RequestContext;
use pitfall_ports::{
    ConsumeError, Consumer, ConsumerRecord, Database, DbError, Env, TopicPartitionOffset,
    Transaction,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Table of dedupe markers, in the consumer's own DB.
pub const PROCESSED: &str = "processed";

/// How a consumer applies what it consumes (pitfall 5): what, if anything,
/// stops a redelivered or re-produced event from applying twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Idempotency {
    /// Apply the effect, then commit the offset.
    Naive,
    /// Dedupe on topic-partition-offset, stored in the effect's transaction.
    DedupeOffset,
    /// Dedupe on the event's identity (payment id + revision), stored in the
    /// effect's transaction.
    DedupeEventId,
}

impl Idempotency {
    pub const ALL: [Idempotency; 3] = [
        Idempotency::Naive,
        Idempotency::DedupeOffset,
        Idempotency::DedupeEventId,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Idempotency::Naive => "naive",
            Idempotency::DedupeOffset => "dedupe-offset",
            Idempotency::DedupeEventId => "dedupe-event-id",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Idempotency::Naive => "naive: apply the effect, then commit the offset",
            Idempotency::DedupeOffset => {
                "remedy (partial): dedupe on topic-partition-offset in the effect's transaction"
            }
            Idempotency::DedupeEventId => {
                "remedy: dedupe on the event's own id (e.g. entity id + revision) in the effect's transaction"
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// The record can never be applied (undecodable, unknown entity). It is
    /// logged and skipped rather than blocking the partition.
    #[error("poison record: {0}")]
    Poison(String),
    /// A service the effect calls (not the DB) did not answer: the
    /// transaction is rolled back and the record applied again later.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Next offsets to commit, per (topic, partition), of records handled but
/// not yet committed.
pub type Uncommitted = BTreeMap<(String, u32), u64>;

/// Commit what was handled. A commit the broker did not answer stays in
/// `uncommitted` and is retried on the next round, even when no new records
/// come (otherwise the group would show lag forever); one rejected after a
/// rebalance is dropped, because the new owner resumes from the last
/// committed offset and these records will be redelivered.
pub async fn commit_offsets(consumer: &mut dyn Consumer, uncommitted: &mut Uncommitted) {
    let offsets: Vec<TopicPartitionOffset> = uncommitted
        .iter()
        .map(|((topic, partition), offset)| TopicPartitionOffset {
            topic: topic.clone(),
            partition: *partition,
            offset: *offset,
        })
        .collect();
    match consumer.commit(&offsets).await {
        Ok(()) => uncommitted.clear(),
        Err(ConsumeError::CommitFailed(e)) => {
            tracing::warn!(error = %e, "consumer: commit rejected after a rebalance");
            uncommitted.clear();
        }
        Err(e) => tracing::warn!(error = %e, "consumer: offset commit failed; will retry"),
    }
}

/// The poll side every consumer loop shares: commit what was handled, then
/// poll, backing off while polls fail.
pub struct Poller {
    consumer: Box<dyn Consumer>,
    uncommitted: Uncommitted,
    backoff: Backoff,
    env: Arc<dyn Env>,
    /// Who polls, for log lines.
    who: &'static str,
}

impl Poller {
    pub fn new(consumer: Box<dyn Consumer>, env: Arc<dyn Env>, who: &'static str) -> Self {
        Poller {
            consumer,
            uncommitted: Uncommitted::new(),
            backoff: Backoff::new(50, 1_000),
            env,
            who,
        }
    }

    /// The next batch of records (possibly none), after committing what was
    /// handled since the last one.
    pub async fn next(&mut self) -> Vec<ConsumerRecord> {
        loop {
            if !self.uncommitted.is_empty() {
                commit_offsets(self.consumer.as_mut(), &mut self.uncommitted).await;
            }
            match self.consumer.poll(Duration::from_millis(200)).await {
                Ok(records) => {
                    self.backoff.reset();
                    return records;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "{}: poll failed", self.who);
                    self.backoff.wait(self.env.as_ref()).await;
                }
            }
        }
    }

    /// Everything of `topic`/`partition` before offset `next` is handled:
    /// commit up to it with the next batch.
    pub fn handled(&mut self, topic: &str, partition: u32, next: u64) {
        self.uncommitted
            .insert((topic.to_string(), partition), next);
    }
}

/// What a consumer does with one record, inside the transaction it is given.
#[async_trait]
pub trait Handler: Send + Sync {
    /// The event's own identity, used by `dedupe-event-id`.
    fn event_id(&self, record: &ConsumerRecord) -> Result<String, ApplyError>;
    async fn apply(
        &self,
        tx: &mut dyn Transaction,
        record: &ConsumerRecord,
    ) -> Result<(), ApplyError>;
}

/// The outcome of handling one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// This very record (same topic, partition and offset) was applied
    /// before: it is delivered again.
    Redelivered,
    /// The same event was applied before from another record (re-produced
    /// at a new offset).
    Duplicate,
    Poison,
}

pub struct ConsumerLoop {
    poller: Poller,
    applier: Applier,
}

impl ConsumerLoop {
    pub fn new(
        consumer: Box<dyn Consumer>,
        db: Arc<dyn Database>,
        handler: Arc<dyn Handler>,
        env: Arc<dyn Env>,
        idempotency: Idempotency,
    ) -> Self {
        ConsumerLoop {
            poller: Poller::new(consumer, env.clone(), "consumer"),
            applier: Applier {
                db,
                handler,
                env,
                idempotency,
            },
        }
    }

    pub async fn run(mut self) {
        loop {
            let records = self.poller.next().await;
            for record in &records {
                let ctx = RequestContext::from_headers(&record.headers).unwrap_or_default();
                ctx.scope(self.applier.handle(record)).await;
                self.poller
                    .handled(&record.topic, record.partition, record.offset + 1);
            }
        }
    }
}

/// Whether a marker written for `applied` (its topic, partition and offset)
/// marks this very record or another copy of the same event.
fn redelivered_or_duplicate(applied: &serde_json::Value, record: &ConsumerRecord) -> Applied {
    let same = applied["topic"] == record.topic.as_str()
        && applied["partition"] == record.partition
        && applied["offset"] == record.offset;
    if same {
        Applied::Redelivered
    } else {
        Applied::Duplicate
    }
}

/// Applies one record's effect in a DB transaction, with the idempotency
/// strategy's marker in the same transaction.
pub struct Applier {
    pub db: Arc<dyn Database>,
    pub handler: Arc<dyn Handler>,
    pub env: Arc<dyn Env>,
    pub idempotency: Idempotency,
}

impl Applier {
    /// Apply one record, retrying transient DB errors until it is applied, a
    /// duplicate, or poison.
    pub async fn handle(&self, record: &ConsumerRecord) -> Applied {
        let mut backoff = Backoff::new(20, 1_000);
        loop {
            match self.apply_once(record).await {
                Ok(applied) => {
                    tracing::info!(
                        topic = record.topic,
                        partition = record.partition,
                        offset = record.offset,
                        outcome = ?applied,
                        "consumer: record handled"
                    );
                    return applied;
                }
                Err(ApplyError::Poison(reason)) => {
                    tracing::error!(
                        reason,
                        topic = record.topic,
                        offset = record.offset,
                        "skipping poison record"
                    );
                    return Applied::Poison;
                }
                Err(e @ (ApplyError::Db(_) | ApplyError::Unavailable(_))) => {
                    tracing::debug!(error = %e, offset = record.offset, "consumer: apply failed; retrying");
                    backoff.wait(self.env.as_ref()).await;
                }
            }
        }
    }

    async fn apply_once(&self, record: &ConsumerRecord) -> Result<Applied, ApplyError> {
        let marker = match self.idempotency {
            Idempotency::Naive => None,
            Idempotency::DedupeOffset => Some(format!(
                "tpo:{}-{}-{}",
                record.topic, record.partition, record.offset
            )),
            Idempotency::DedupeEventId => Some(format!("event:{}", self.handler.event_id(record)?)),
        };
        let mut tx = self.db.begin().await?;
        if let Some(marker) = &marker {
            if let Some(row) = tx.get(PROCESSED, marker).await? {
                tx.rollback().await;
                return Ok(redelivered_or_duplicate(&row.data, record));
            }
        }
        if let Err(e) = self.handler.apply(tx.as_mut(), record).await {
            tx.rollback().await;
            return Err(e);
        }
        if let Some(marker) = &marker {
            let data = serde_json::json!({
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
            });
            // A marker written meanwhile by a concurrent application (two
            // members across a rebalance) is a conflict: the retry reads it
            // and tells a redelivery of this record from another copy.
            match tx.insert(PROCESSED, marker, data).await {
                Ok(()) => {}
                Err(DbError::UniqueViolation { .. }) => {
                    tx.rollback().await;
                    return Err(DbError::Conflict.into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        match tx.commit().await {
            Ok(_) => Ok(Applied::Applied),
            Err(DbError::UniqueViolation { .. }) if marker.is_some() => {
                Err(DbError::Conflict.into())
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: u64) -> ConsumerRecord {
        ConsumerRecord {
            topic: "payments".into(),
            partition: 1,
            offset,
            key: "o1".into(),
            value: Default::default(),
            headers: vec![],
        }
    }

    #[test]
    fn a_marker_of_this_very_record_is_a_redelivery_of_another_a_duplicate() {
        let marker = serde_json::json!({"topic": "payments", "partition": 1, "offset": 7});
        assert_eq!(
            redelivered_or_duplicate(&marker, &record(7)),
            Applied::Redelivered
        );
        assert_eq!(
            redelivered_or_duplicate(&marker, &record(9)),
            Applied::Duplicate
        );
    }
}
