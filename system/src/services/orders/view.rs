//! The order-view projection: a materialized view of orders built from the
//! published order events, as a consumer [`Handler`]. Under
//! `event-sourced` it folds the event store's events in sequence (and is
//! the orders service's query side); under `crud-cdc` it reads the
//! translator's official events, each carrying the whole state, and keeps
//! the newest revision. Either way a stale or repeated event changes nothing.

use super::service::{insert, json, read};
use super::{OrderEvent, OrderEventRow, OrderState, ViewRow, ORDER_EVENT};
use crate::events::{ChangeEnvelope, CDC_CHANGE, TYPE_HEADER};
use crate::schema::ORDER_VIEW;
use async_trait::async_trait;
use pitfall_blocks::consume::{ApplyError, Handler};
use pitfall_ports::{ConsumerRecord, DbError, Transaction};

/// The projection's consumer group.
pub const GROUP: &str = "order-view";

/// What one record says: the order, the revision it brings the view to, and
/// how to get there from the previous revision.
enum Update {
    /// Event `seq` of the event store: apply it on top of `seq - 1`.
    Event(OrderEventRow),
    /// The whole state at `revision`.
    State(OrderEvent),
}

impl Update {
    fn order_id(&self) -> &str {
        match self {
            Update::Event(e) => &e.order_id,
            Update::State(e) => &e.order_id,
        }
    }

    fn revision(&self) -> u64 {
        match self {
            Update::Event(e) => e.seq,
            Update::State(e) => e.revision,
        }
    }
}

fn decode(record: &ConsumerRecord) -> Result<Update, ApplyError> {
    let poison = |e: String| ApplyError::Poison(e);
    match record.header(TYPE_HEADER) {
        Some(CDC_CHANGE) => {
            let change: ChangeEnvelope = serde_json::from_slice(&record.value.bytes())
                .map_err(|e| poison(format!("bad change envelope: {e}")))?;
            serde_json::from_value(change.after)
                .map(Update::Event)
                .map_err(|e| poison(format!("bad order event row: {e}")))
        }
        Some(ORDER_EVENT) => serde_json::from_slice(&record.value.bytes())
            .map(Update::State)
            .map_err(|e| poison(format!("bad order event: {e}"))),
        other => Err(poison(format!("unknown record type {other:?}"))),
    }
}

pub struct Project;

#[async_trait]
impl Handler for Project {
    fn event_id(&self, record: &ConsumerRecord) -> Result<String, ApplyError> {
        let update = decode(record)?;
        Ok(format!("{}@{}", update.order_id(), update.revision()))
    }

    async fn apply(
        &self,
        tx: &mut dyn Transaction,
        record: &ConsumerRecord,
    ) -> Result<(), ApplyError> {
        let update = decode(record)?;
        let order_id = update.order_id().to_string();
        let next_revision = update.revision();
        let current = read::<ViewRow>(tx, ORDER_VIEW, &order_id).await?;
        let revision = current.as_ref().map_or(0, |(_, v)| v.revision);
        if next_revision <= revision {
            return Ok(());
        }
        let state = match update {
            Update::State(event) => event.state,
            Update::Event(event) if event.seq == revision + 1 => {
                let mut state = current
                    .as_ref()
                    .map_or_else(|| OrderState::new(&order_id), |(_, v)| v.state.clone());
                state.apply(&event.fact);
                state
            }
            Update::Event(event) => {
                // Events come in sequence per order; a gap means one was lost.
                return Err(ApplyError::Poison(format!(
                    "order {order_id}: event {} after {revision}; the view cannot skip events",
                    event.seq
                )));
            }
        };
        let row = json(&ViewRow {
            order_id: order_id.clone(),
            revision: next_revision,
            state,
        });
        match current {
            None => insert(tx, ORDER_VIEW, &order_id, row).await?,
            Some((version, _)) => {
                if !tx.update(ORDER_VIEW, &order_id, version, row).await? {
                    return Err(DbError::Conflict.into());
                }
            }
        }
        Ok(())
    }
}
