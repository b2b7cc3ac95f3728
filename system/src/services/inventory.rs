//! The inventory service: consumes payment events and reserves stock —
//! decrements the product's stock and writes a reservation row — or writes a
//! rejection when there is too little; a refund releases what was reserved.
//! Which duplicates it survives is the consumer loop's idempotency variant;
//! whether a stale update (an older revision arriving after a newer one) can
//! undo a newer one is its [`Ordering`] variant. With a third-party carrier,
//! each reservation also ships, by its [`ThirdPartyCall`] variant.

use crate::events::{decode_payment, PaymentCompleted, PaymentStatus};
use crate::schema::{
    EffectRow, EffectStatus, OutcomeRow, ReservedEvent, ShipRequest, StockRow, EFFECTS, REJECTIONS,
    RELEASES, RESERVATIONS, RESERVED_TOPIC, SHIP_OUTBOX, STOCK,
};
use crate::services::carrier::CarrierClient;
use crate::variants::{Ordering, ThirdPartyCall};
use async_trait::async_trait;
use pitfall_blocks::consume::{ApplyError, Handler};
use pitfall_blocks::eos::Transform;
use pitfall_blocks::publish;
use pitfall_ports::{coverage, ConsumerRecord, DbError, Env, ProducerRecord, Row, Transaction};
use std::sync::Arc;

pub const GROUP: &str = "inventory";

pub struct ReserveStock {
    env: Arc<dyn Env>,
    ordering: Ordering,
    /// The third-party carrier each reservation ships with, if any.
    shipping: Option<CarrierClient>,
}

impl ReserveStock {
    pub fn new(env: Arc<dyn Env>, ordering: Ordering) -> Self {
        ReserveStock {
            env,
            ordering,
            shipping: None,
        }
    }

    /// Ship each reservation through the carrier.
    pub fn shipping(mut self, client: Option<CarrierClient>) -> Self {
        self.shipping = client;
        self
    }
}

fn poison(what: &str, e: impl std::fmt::Display) -> ApplyError {
    ApplyError::Poison(format!("{what}: {e}"))
}

fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("row serializes")
}

#[async_trait]
impl Handler for ReserveStock {
    fn event_id(&self, record: &ConsumerRecord) -> Result<String, ApplyError> {
        decode_payment(record)
            .map(|p| p.event_id())
            .map_err(|e| ApplyError::Poison(e.to_string()))
    }

    async fn apply(
        &self,
        tx: &mut dyn Transaction,
        record: &ConsumerRecord,
    ) -> Result<(), ApplyError> {
        let payment = decode_payment(record).map_err(|e| ApplyError::Poison(e.to_string()))?;
        let effect = tx.get(EFFECTS, &payment.payment_id).await?;
        let current: Option<EffectRow> = effect
            .as_ref()
            .map(|row| serde_json::from_value(row.data.clone()))
            .transpose()
            .map_err(|e| poison("bad effect row", e))?;
        if self.ordering == Ordering::Revision {
            if let Some(current) = &current {
                if current.revision >= payment.revision {
                    tracing::info!(
                        payment = payment.payment_id,
                        revision = payment.revision,
                        applied = current.revision,
                        "inventory: stale update discarded"
                    );
                    self.env.mark(coverage::STALE_REVISION_DISCARDED);
                    return Ok(());
                }
            }
        }
        let next = match payment.status {
            PaymentStatus::Completed => self.reserve(tx, &payment).await?,
            PaymentStatus::Refunded => self.release(tx, &payment, current.as_ref()).await?,
        };
        write_effect(tx, &payment.payment_id, effect.as_ref(), &next).await
    }
}

impl ReserveStock {
    /// Reserve the payment's quantity, or reject it for lack of stock.
    async fn reserve(
        &self,
        tx: &mut dyn Transaction,
        payment: &PaymentCompleted,
    ) -> Result<EffectRow, ApplyError> {
        let (stock, level) = stock_of(tx, &payment.product).await?;
        let reserved = level.available >= payment.qty;
        let (table, prefix, status, held) = if reserved {
            let left = StockRow {
                available: level.available - payment.qty,
            };
            update_stock(tx, &payment.product, stock.version, &left).await?;
            self.ship(tx, payment).await?;
            (RESERVATIONS, "res", EffectStatus::Reserved, payment.qty)
        } else {
            (REJECTIONS, "rej", EffectStatus::Rejected, 0)
        };
        // A fresh id per application: nothing in the effect itself dedupes.
        let id = format!("{prefix}-{:016x}", self.env.random_u64());
        tx.insert(table, &id, json(&outcome(payment, payment.qty)))
            .await?;
        Ok(effect(payment, status, held))
    }

    /// Ship the reservation: call the carrier now (naive, idempotency key),
    /// or record the call in this transaction's outbox for the relay.
    async fn ship(
        &self,
        tx: &mut dyn Transaction,
        payment: &PaymentCompleted,
    ) -> Result<(), ApplyError> {
        let Some(client) = &self.shipping else {
            return Ok(());
        };
        let request = ShipRequest {
            payment_id: payment.payment_id.clone(),
            order_id: payment.order_id.clone(),
            product: payment.product.clone(),
            qty: payment.qty,
            request_id: payment.request_id.clone(),
            user_id: payment.user_id.clone(),
        };
        let key = payment.event_id();
        match client.call {
            ThirdPartyCall::Outbox => Ok(tx.insert(SHIP_OUTBOX, &key, json(&request)).await?),
            ThirdPartyCall::Naive | ThirdPartyCall::IdempotencyKey => client
                .ship(&request, &key)
                .await
                .map(|_| ())
                .map_err(ApplyError::Unavailable),
        }
    }

    /// Give back whatever the payment holds (nothing when it was rejected,
    /// already released, or not applied yet) and record the release.
    async fn release(
        &self,
        tx: &mut dyn Transaction,
        payment: &PaymentCompleted,
        current: Option<&EffectRow>,
    ) -> Result<EffectRow, ApplyError> {
        let held = current
            .filter(|c| c.status == EffectStatus::Reserved)
            .map_or(0, |c| c.held);
        if held > 0 {
            let (stock, level) = stock_of(tx, &payment.product).await?;
            let back = StockRow {
                available: level.available + held,
            };
            update_stock(tx, &payment.product, stock.version, &back).await?;
        }
        let id = format!("rel-{:016x}", self.env.random_u64());
        tx.insert(RELEASES, &id, json(&outcome(payment, held)))
            .await?;
        Ok(effect(payment, EffectStatus::Released, 0))
    }
}

/// `kafka-eos`: the reserved event for each payment event consumed,
/// produced in the Kafka transaction that commits its offset.
pub struct Reserved;

impl Transform for Reserved {
    fn output(&self, record: &ConsumerRecord) -> Option<ProducerRecord> {
        let payment = decode_payment(record).ok()?;
        let event = ReservedEvent {
            payment_id: payment.payment_id.clone(),
            revision: payment.revision,
            source: format!("{}/{}@{}", record.topic, record.partition, record.offset),
            request_id: payment.request_id,
            user_id: payment.user_id,
        };
        let value = serde_json::to_vec(&event).expect("event serializes");
        Some(publish::record(
            RESERVED_TOPIC,
            &payment.payment_id,
            "inventory-reserved",
            value,
        ))
    }
}

fn effect(payment: &PaymentCompleted, status: EffectStatus, held: i64) -> EffectRow {
    EffectRow {
        revision: payment.revision,
        status,
        product: payment.product.clone(),
        held,
        order_id: payment.order_id.clone(),
        request_id: payment.request_id.clone(),
        user_id: payment.user_id.clone(),
    }
}

fn outcome(payment: &PaymentCompleted, qty: i64) -> OutcomeRow {
    OutcomeRow {
        payment_id: payment.payment_id.clone(),
        revision: payment.revision,
        order_id: payment.order_id.clone(),
        product: payment.product.clone(),
        qty,
        request_id: payment.request_id.clone(),
        user_id: payment.user_id.clone(),
    }
}

async fn stock_of(tx: &mut dyn Transaction, product: &str) -> Result<(Row, StockRow), ApplyError> {
    let row = tx
        .get(STOCK, product)
        .await?
        .ok_or_else(|| ApplyError::Poison(format!("unknown product {product}")))?;
    let level = serde_json::from_value(row.data.clone()).map_err(|e| poison("bad stock row", e))?;
    Ok((row, level))
}

async fn update_stock(
    tx: &mut dyn Transaction,
    product: &str,
    version: u64,
    level: &StockRow,
) -> Result<(), ApplyError> {
    if tx.update(STOCK, product, version, json(level)).await? {
        Ok(())
    } else {
        Err(DbError::Conflict.into())
    }
}

async fn write_effect(
    tx: &mut dyn Transaction,
    payment_id: &str,
    existing: Option<&Row>,
    next: &EffectRow,
) -> Result<(), ApplyError> {
    match existing {
        None => Ok(tx.insert(EFFECTS, payment_id, json(next)).await?),
        Some(row) => {
            if tx
                .update(EFFECTS, payment_id, row.version, json(next))
                .await?
            {
                Ok(())
            } else {
                Err(DbError::Conflict.into())
            }
        }
    }
}
