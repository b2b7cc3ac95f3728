//! Producing events: records that carry the current request context as
//! headers, and the resilient producer (pitfall 1, remedy I).
//!
//! The resilient producer tries the broker first. When the broker fails it
//! parks the record in the object store under [`FALLBACK_PREFIX`] and keeps
//! trying until one of the two has it; the recovery service re-produces
//! parked records later, which can reorder them relative to newer ones.

use crate::backoff::Backoff;
use pitfall_ports::context::RequestContext;
use pitfall_ports::coverage;
use pitfall_ports::{Delivery, Env, ObjectStore, ProduceError, Producer, ProducerRecord};

/// Record header naming the payload's type.
pub const TYPE_HEADER: &str = "type";

/// Object-store prefix under which the resilient producer parks records.
pub const FALLBACK_PREFIX: &str = "fallback/";
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A record of type `kind` whose headers carry the current request context.
pub fn record(topic: &str, key: &str, kind: &str, value: Vec<u8>) -> ProducerRecord {
    let mut headers = vec![(TYPE_HEADER.to_string(), kind.to_string())];
    if let Some(ctx) = RequestContext::current() {
        headers.extend(ctx.to_headers());
    }
    ProducerRecord {
        topic: topic.to_string(),
        key: key.to_string(),
        value: value.into(),
        headers,
    }
}

/// What the object store holds for a parked record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParkedRecord {
    pub record: ProducerRecord,
    pub parked_at_ms: u64,
}

/// Where the resilient producer secured a record.
#[derive(Clone, Debug, PartialEq)]
pub enum Secured {
    Produced(Delivery),
    Parked { object_key: String },
}

pub struct ResilientProducer {
    producer: Arc<dyn Producer>,
    store: Arc<dyn ObjectStore>,
    env: Arc<dyn Env>,
}

impl ResilientProducer {
    pub fn new(
        producer: Arc<dyn Producer>,
        store: Arc<dyn ObjectStore>,
        env: Arc<dyn Env>,
    ) -> Self {
        ResilientProducer {
            producer,
            store,
            env,
        }
    }

    /// Returns once the broker acknowledged the record or the object store
    /// holds it. Only a record the broker can never take is an error.
    pub async fn send(&self, record: ProducerRecord) -> Result<Secured, ProduceError> {
        let mut backoff = Backoff::new(50, 2_000);
        loop {
            match self.producer.send(record.clone()).await {
                Ok(delivery) => return Ok(Secured::Produced(delivery)),
                Err(e @ ProduceError::MessageTooLarge { .. }) => return Err(e),
                Err(e) => tracing::warn!(error = %e, "produce failed; parking in the object store"),
            }
            let now = self.env.now_ms();
            let object_key = format!("{FALLBACK_PREFIX}{now:012}-{:016x}", self.env.random_u64());
            let parked = ParkedRecord {
                record: record.clone(),
                parked_at_ms: now,
            };
            let bytes = serde_json::to_vec(&parked).expect("a parked record serializes");
            match self.store.put(&object_key, bytes.into()).await {
                Ok(()) => {
                    self.env.mark(coverage::EVENT_PARKED);
                    return Ok(Secured::Parked { object_key });
                }
                Err(e) => tracing::warn!(error = %e, "object store fallback failed; retrying both"),
            }
            backoff.wait(self.env.as_ref()).await;
        }
    }
}
