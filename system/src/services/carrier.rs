//! Pitfall 5's side effect outside the database: a third-party carrier API
//! that ships one parcel per call, and the inventory's client of it.
//!
//! The carrier keeps its own state (every shipment it performed, and the
//! idempotency keys it has seen) in its own DB, so the history shows every
//! action it took. A call that carries a key it has seen is answered from
//! the first result, the way Stripe's `Idempotency-Key` works.
//!
//! The client calls once per reservation and retries a call that got no
//! answer. Whether a retry (or a redelivered record, or a transaction that
//! conflicts after the call) ships twice is the [`ThirdPartyCall`] variant.

use crate::schema::{ShipRequest, ShipmentRow, SHIPMENTS, SHIPMENT_KEYS};
use crate::variants::ThirdPartyCall;
use async_trait::async_trait;
use pitfall_blocks::backoff::Backoff;
use pitfall_blocks::relay::Outbound;
use pitfall_harness::rpc::{self, CallError, RpcClient};
use pitfall_ports::{coverage, Change, Database, DbError, Env};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How long the client waits for one call's answer.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(400);
/// Calls the client makes for one shipment before it gives up for now.
const ATTEMPTS: u32 = 4;

/// A call to the carrier's front door.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShipCall {
    pub request: ShipRequest,
    pub key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShipReply {
    Shipped { shipment_id: String },
    Failed { error: String },
}

/// The third party.
pub struct Carrier {
    db: Arc<dyn Database>,
    env: Arc<dyn Env>,
}

impl Carrier {
    pub fn new(db: Arc<dyn Database>, env: Arc<dyn Env>) -> Self {
        Carrier { db, env }
    }

    /// Ship, or answer a repeated key from its first shipment. A conflict
    /// with a concurrent call of the same key is retried, so the second
    /// call finds the first one's key.
    pub async fn ship(&self, call: ShipCall) -> ShipReply {
        let mut conflicts = 0;
        loop {
            match self.try_ship(&call).await {
                Ok(shipment_id) => return ShipReply::Shipped { shipment_id },
                Err(DbError::Conflict | DbError::UniqueViolation { .. }) if conflicts < 3 => {
                    conflicts += 1;
                }
                Err(e) => {
                    return ShipReply::Failed {
                        error: e.to_string(),
                    }
                }
            }
        }
    }

    async fn try_ship(&self, call: &ShipCall) -> Result<String, DbError> {
        let mut tx = self.db.begin().await?;
        if let Some(key) = &call.key {
            if let Some(row) = tx.get(SHIPMENT_KEYS, key).await? {
                tx.rollback().await;
                self.env.mark(coverage::IDEMPOTENT_CALL_REPLAYED);
                let id = row.data["shipment_id"].as_str().unwrap_or_default();
                return Ok(id.to_string());
            }
        }
        let id = format!("shp-{:016x}", self.env.random_u64());
        let row = ShipmentRow {
            request: call.request.clone(),
            key: call.key.clone(),
        };
        let data = serde_json::to_value(&row).expect("shipment row serializes");
        tx.insert(SHIPMENTS, &id, data).await?;
        if let Some(key) = &call.key {
            let data = serde_json::json!({ "shipment_id": id });
            tx.insert(SHIPMENT_KEYS, key, data).await?;
        }
        tx.commit().await?;
        Ok(id)
    }
}

/// The inventory's client of the carrier.
#[derive(Clone)]
pub struct CarrierClient {
    pub rpc: Arc<dyn RpcClient>,
    pub env: Arc<dyn Env>,
    /// The carrier's host.
    pub host: String,
    pub call: ThirdPartyCall,
}

impl CarrierClient {
    /// Ship `request`, with the idempotency key `key` when the variant sends
    /// one. A call without an answer is retried a few times, then reported
    /// as unavailable (the caller retries later).
    pub async fn ship(&self, request: &ShipRequest, key: &str) -> Result<String, String> {
        let call = ShipCall {
            request: request.clone(),
            key: (self.call != ThirdPartyCall::Naive).then(|| key.to_string()),
        };
        let mut backoff = Backoff::new(50, 500);
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            let reply: Result<ShipReply, CallError> =
                rpc::call(self.rpc.as_ref(), &self.host, &call, CALL_TIMEOUT).await;
            match reply {
                Ok(ShipReply::Shipped { shipment_id }) => return Ok(shipment_id),
                Ok(ShipReply::Failed { error }) => last = error,
                Err(e) => last = e.to_string(),
            }
            backoff.wait(self.env.as_ref()).await;
        }
        Err(format!("carrier: {last}"))
    }
}

/// The outbox relay's call: one shipment per outbox row, keyed by the row.
#[async_trait]
impl Outbound for CarrierClient {
    async fn send(&self, row: &Change) -> Result<(), String> {
        let request: ShipRequest = serde_json::from_value(row.data.clone())
            .map_err(|e| format!("bad outbox row {}: {e}", row.key))?;
        self.ship(&request, &row.key).await.map(|_| ())
    }
}
