//! `crud-cdc`'s translator: reads the orders table's raw change log and
//! produces the official order-events API topic — one [`OrderEvent`] per
//! change, naming what changed and carrying the whole state at that
//! revision. Downstream services read that topic, never the raw one, so the
//! table's shape stays private to the orders service.
//!
//! Produce first, then commit the offset: at least once. A redelivered
//! change is produced again with the same revision, which readers discard.
//! A poll's changes are sent [`IN_FLIGHT`] at a time, one per order, so
//! retries and the reorder fault swap different orders' events but never
//! one order's.

use super::{OrderEvent, OrderRow, ORDER_EVENT};
use crate::events::ChangeEnvelope;
use crate::schema::ORDER_EVENTS_TOPIC;
use futures_util::future::join_all;
use pitfall_blocks::backoff::Backoff;
use pitfall_blocks::consume::Poller;
use pitfall_blocks::pipeline;
use pitfall_blocks::publish;
use pitfall_ports::context::RequestContext;
use pitfall_ports::{Consumer, ConsumerRecord, Env, Producer};
use std::sync::Arc;

/// The translator's consumer group.
pub const GROUP: &str = "translator";

/// Sends in flight at once: Kafka's default
/// `max.in.flight.requests.per.connection`.
pub const IN_FLIGHT: usize = 5;

pub struct Translator {
    poller: Poller,
    producer: Arc<dyn Producer>,
    env: Arc<dyn Env>,
}

/// The official event for one raw change of the orders table.
pub fn translate(record: &ConsumerRecord) -> Result<OrderEvent, String> {
    let change: ChangeEnvelope = serde_json::from_slice(&record.value.bytes())
        .map_err(|e| format!("bad change envelope: {e}"))?;
    let row: OrderRow =
        serde_json::from_value(change.after).map_err(|e| format!("bad orders row: {e}"))?;
    Ok(OrderEvent {
        order_id: row.order_id,
        revision: change.version,
        fact: row.last,
        state: row.state,
        request_id: row.request_id,
        user_id: row.user_id,
    })
}

impl Translator {
    pub fn new(
        consumer: Box<dyn Consumer>,
        producer: Arc<dyn Producer>,
        env: Arc<dyn Env>,
    ) -> Self {
        Translator {
            poller: Poller::new(consumer, env.clone(), "translator"),
            producer,
            env,
        }
    }

    pub async fn run(mut self) {
        loop {
            let records = self.poller.next().await;
            for round in pipeline::rounds(&records, IN_FLIGHT, |r| &r.key) {
                join_all(round.into_iter().map(|record| {
                    let ctx = RequestContext::from_headers(&record.headers).unwrap_or_default();
                    ctx.scope(self.forward(record))
                }))
                .await;
            }
            for record in &records {
                self.poller
                    .handled(&record.topic, record.partition, record.offset + 1);
            }
        }
    }

    /// Produce the official event for one change, retrying until the broker
    /// acknowledges it; an untranslatable change is logged and skipped.
    async fn forward(&self, record: &ConsumerRecord) {
        let event = match translate(record) {
            Ok(event) => event,
            Err(reason) => {
                tracing::error!(
                    reason,
                    offset = record.offset,
                    "translator: skipping change"
                );
                return;
            }
        };
        let value = serde_json::to_vec(&event).expect("order event serializes");
        let out = publish::record(ORDER_EVENTS_TOPIC, &event.order_id, ORDER_EVENT, value);
        let mut backoff = Backoff::new(50, 2_000);
        loop {
            match self.producer.send(out.clone()).await {
                Ok(d) => {
                    tracing::info!(
                        order = event.order_id,
                        revision = event.revision,
                        partition = d.partition,
                        offset = d.offset,
                        "translator: order event produced"
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "translator: produce failed; retrying");
                    backoff.wait(self.env.as_ref()).await;
                }
            }
        }
    }
}
