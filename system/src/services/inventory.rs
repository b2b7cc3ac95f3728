//! The inventory service: consumes payment events and reserves stock —
//! decrements the product's stock and writes a reservation row — or writes a
//! rejection when there is too little. Which duplicates it survives is the
//! consumer loop's idempotency variant.

use crate::blocks::consume::{ApplyError, Handler};
use crate::events::decode_payment;
use crate::ports::{ConsumerRecord, DbError, Env, Transaction};
use crate::schema::{OutcomeRow, StockRow, REJECTIONS, RESERVATIONS, STOCK};
use async_trait::async_trait;
use std::sync::Arc;

pub const GROUP: &str = "inventory";

pub struct ReserveStock {
    env: Arc<dyn Env>,
}

impl ReserveStock {
    pub fn new(env: Arc<dyn Env>) -> Self {
        ReserveStock { env }
    }
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
        let stock = tx
            .get(STOCK, &payment.product)
            .await?
            .ok_or_else(|| ApplyError::Poison(format!("unknown product {}", payment.product)))?;
        let level: StockRow = serde_json::from_value(stock.data)
            .map_err(|e| ApplyError::Poison(format!("bad stock row: {e}")))?;
        let outcome = OutcomeRow {
            payment_id: payment.payment_id.clone(),
            revision: payment.revision,
            order_id: payment.order_id.clone(),
            product: payment.product.clone(),
            qty: payment.qty,
            request_id: payment.request_id.clone(),
            user_id: payment.user_id.clone(),
        };
        let outcome_value = serde_json::to_value(&outcome).expect("outcome serializes");
        // A fresh id per application: nothing in the effect itself dedupes.
        let id = format!("{:016x}", self.env.random_u64());
        if level.available >= payment.qty {
            let left = StockRow {
                available: level.available - payment.qty,
            };
            let updated = tx
                .update(
                    STOCK,
                    &payment.product,
                    stock.version,
                    serde_json::to_value(&left).expect("stock serializes"),
                )
                .await?;
            if !updated {
                return Err(DbError::Conflict.into());
            }
            tx.insert(RESERVATIONS, &format!("res-{id}"), outcome_value)
                .await?;
        } else {
            tx.insert(REJECTIONS, &format!("rej-{id}"), outcome_value)
                .await?;
        }
        Ok(())
    }
}
