//! The CDC connector (pitfall 1, remedy II): tails a DB change feed through a
//! replication slot and produces one change event per row change.
//!
//! It keeps two positions: how far it has produced (in memory) and how far it
//! has confirmed to the slot (durable). It confirms only positions whose
//! records the broker acknowledged, and only every `flush_interval`, like
//! Kafka Connect's offset flush. A crash in between makes it produce the same
//! changes again at new offsets: delivery is at least once.
//!
//! Like a Connect worker, it keeps several sends in flight (`in_flight`), so
//! retries and the broker's reorder fault can swap changes of different
//! keys; a key's next change waits for its previous one's ack
//! ([`crate::pipeline`]), so per-key order holds even when the producer is
//! not idempotent or gives up and is retried.

use crate::backoff::Backoff;
use crate::pipeline;
use crate::publish::TYPE_HEADER;
use futures_util::future::join_all;
use pitfall_ports::context::RequestContext;
use pitfall_ports::{Change, ChangeFeed, ChangeOp, Env, Lsn, Producer, ProducerRecord};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The `type` header of a change event.
pub const CDC_CHANGE: &str = "cdc-change";

/// A Debezium-style change event for one row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeEnvelope {
    pub source_lsn: u64,
    pub table: String,
    pub op: ChangeOp,
    pub key: String,
    pub version: u64,
    pub after: serde_json::Value,
}

impl From<&Change> for ChangeEnvelope {
    fn from(c: &Change) -> Self {
        ChangeEnvelope {
            source_lsn: c.lsn,
            table: c.table.clone(),
            op: c.op,
            key: c.key.clone(),
            version: c.version,
            after: c.data.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct CdcConfig {
    pub slot: String,
    /// Tables to capture, each with the topic its changes go to.
    pub routes: Vec<(String, String)>,
    /// Tables whose records are keyed by a field of the row instead of its
    /// primary key (Debezium's `message.key.columns`): an event store keyed
    /// `{order}/{seq}` must be keyed by order to keep each order's events in
    /// one partition, in order.
    pub key_fields: Vec<(String, String)>,
    pub poll_interval: Duration,
    pub flush_interval: Duration,
    /// Transactions read per poll.
    pub batch: usize,
    /// Changes sent at once (of distinct keys), each retried until
    /// acknowledged; the slot position moves past a poll's changes only once
    /// all are acknowledged.
    pub in_flight: usize,
    /// Attach the row's request context as record headers.
    pub propagate_context: bool,
}

impl CdcConfig {
    /// A connector for `slot` that sends each captured table's changes to
    /// its topic, polled every 100 ms and confirmed every second (like Kafka
    /// Connect's offset flush), 50 transactions a poll with up to 5 sends in
    /// flight (Kafka's default `max.in.flight.requests.per.connection`), with
    /// the request context carried as headers.
    pub fn new(slot: &str, routes: &[(&str, &str)]) -> Self {
        CdcConfig {
            slot: slot.into(),
            routes: routes
                .iter()
                .map(|(table, topic)| (table.to_string(), topic.to_string()))
                .collect(),
            poll_interval: Duration::from_millis(100),
            flush_interval: Duration::from_millis(1_000),
            batch: 50,
            in_flight: 5,
            propagate_context: true,
            key_fields: Vec::new(),
        }
    }

    /// Key `table`'s records by the row field `field` instead of the row's
    /// primary key.
    pub fn key_by(mut self, table: &str, field: &str) -> Self {
        self.key_fields.push((table.into(), field.into()));
        self
    }

    /// Capture `table` too, into `topic`.
    pub fn route(mut self, table: &str, topic: &str) -> Self {
        self.routes.push((table.into(), topic.into()));
        self
    }
}

pub struct CdcConnector {
    feed: Arc<dyn ChangeFeed>,
    producer: Arc<dyn Producer>,
    env: Arc<dyn Env>,
    config: CdcConfig,
}

impl CdcConnector {
    pub fn new(
        feed: Arc<dyn ChangeFeed>,
        producer: Arc<dyn Producer>,
        env: Arc<dyn Env>,
        config: CdcConfig,
    ) -> Self {
        CdcConnector {
            feed,
            producer,
            env,
            config,
        }
    }

    pub async fn run(self) {
        let mut backoff = Backoff::new(50, 1_000);
        let mut produced = resume_position(
            self.feed.as_ref(),
            &self.config.slot,
            self.env.as_ref(),
            &mut backoff,
        )
        .await;
        let mut confirmed = produced;
        let mut last_flush = self.env.now_ms();
        loop {
            let flush_due = self.env.now_ms().saturating_sub(last_flush)
                >= self.config.flush_interval.as_millis() as u64;
            if flush_due {
                if produced > confirmed {
                    match self.feed.confirm(&self.config.slot, produced).await {
                        Ok(()) => confirmed = produced,
                        Err(e) => tracing::warn!(error = %e, "cdc: cannot confirm slot position"),
                    }
                }
                last_flush = self.env.now_ms();
            }
            // Waits up to a poll interval for a commit when there is none.
            let changes = match self
                .feed
                .poll_wait(
                    &self.config.slot,
                    produced,
                    self.config.batch,
                    self.config.poll_interval,
                )
                .await
            {
                Ok(changes) => changes,
                Err(e) => {
                    tracing::warn!(error = %e, "cdc: cannot read changes");
                    backoff.wait(self.env.as_ref()).await;
                    continue;
                }
            };
            backoff.reset();
            if changes.is_empty() {
                continue;
            }
            for round in pipeline::rounds(&changes, self.config.in_flight, |c| self.key_of(c)) {
                join_all(round.into_iter().map(|change| self.produce(change))).await;
            }
            produced = changes.iter().map(|c| c.lsn).fold(produced, u64::max);
        }
    }

    /// Produce one change, retrying until the broker acknowledges it: a
    /// change is never skipped.
    async fn produce(&self, change: &Change) {
        let Some(topic) = self.route(&change.table) else {
            return;
        };
        let ctx = context_of(change);
        let mut headers = vec![(TYPE_HEADER.to_string(), CDC_CHANGE.to_string())];
        if let Some(ctx) = ctx.as_ref().filter(|_| self.config.propagate_context) {
            headers.extend(ctx.to_headers());
        }
        let value = serde_json::to_vec(&ChangeEnvelope::from(change)).expect("envelope serializes");
        let key = self.key_of(change);
        let record = ProducerRecord {
            topic: topic.to_string(),
            key: key.to_string(),
            value: value.into(),
            headers,
        };
        let mut backoff = Backoff::new(50, 2_000);
        loop {
            let producer = &self.producer;
            let sent = ctx
                .clone()
                .unwrap_or_default()
                .scope(async {
                    let sent = producer.send(record.clone()).await;
                    match &sent {
                        Ok(d) => tracing::info!(
                            lsn = change.lsn,
                            topic,
                            partition = d.partition,
                            offset = d.offset,
                            "cdc: change produced"
                        ),
                        Err(e) => tracing::warn!(error = %e, lsn = change.lsn, "cdc: produce failed; retrying"),
                    }
                    sent
                })
                .await;
            if sent.is_ok() {
                return;
            }
            backoff.wait(self.env.as_ref()).await;
        }
    }

    /// The record key of a change: its row's primary key, or the field
    /// the table is keyed by.
    fn key_of<'c>(&self, change: &'c Change) -> &'c str {
        self.config
            .key_fields
            .iter()
            .find(|(t, _)| *t == change.table)
            .and_then(|(_, field)| change.data.get(field)?.as_str())
            .unwrap_or(&change.key)
    }

    fn route(&self, table: &str) -> Option<&str> {
        self.config
            .routes
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, topic)| topic.as_str())
    }
}

/// The slot's durable confirmed position, where a reader of the feed
/// resumes after a (re)start: read until the DB answers.
pub async fn resume_position(
    feed: &dyn ChangeFeed,
    slot: &str,
    env: &dyn Env,
    backoff: &mut Backoff,
) -> Lsn {
    loop {
        match feed.confirmed(slot).await {
            Ok(lsn) => return lsn,
            Err(e) => {
                tracing::warn!(error = %e, slot, "cannot read the slot's position");
                backoff.wait(env).await;
            }
        }
    }
}

/// The request context of the transaction that made a change, taken from the
/// row's `request_id` and `user_id` columns.
pub fn context_of(change: &Change) -> Option<RequestContext> {
    let field = |name| change.data.get(name)?.as_str().map(str::to_string);
    Some(RequestContext {
        request_id: field("request_id")?,
        user_id: field("user_id")?,
    })
}
