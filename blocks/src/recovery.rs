//! The recovery service of the resilient producer: re-produces records parked
//! in the object store, then deletes them. A crash between the produce and the
//! delete produces the record again at a new offset, so downstream dedupe must
//! use the event's identity, not its offset.

use crate::publish::ParkedRecord;
use crate::publish::FALLBACK_PREFIX;
use pitfall_ports::context::{RequestContext, REQUEST_ID_HEADER, USER_ID_HEADER};
use pitfall_ports::{coverage, Env, ObjectStore, Producer};
use std::sync::Arc;
use std::time::Duration;

pub struct Recovery {
    producer: Arc<dyn Producer>,
    store: Arc<dyn ObjectStore>,
    env: Arc<dyn Env>,
    interval: Duration,
    propagate_context: bool,
}

impl Recovery {
    pub fn new(
        producer: Arc<dyn Producer>,
        store: Arc<dyn ObjectStore>,
        env: Arc<dyn Env>,
        interval: Duration,
    ) -> Self {
        Recovery {
            producer,
            store,
            env,
            interval,
            propagate_context: true,
        }
    }

    /// Whether re-produced records keep their request-context headers.
    pub fn propagate_context(mut self, on: bool) -> Self {
        self.propagate_context = on;
        self
    }

    pub async fn run(self) {
        loop {
            self.env.sleep(self.interval).await;
            self.sweep().await;
        }
    }

    /// One pass over the parked records, oldest first. Stops at the first
    /// failure; the next pass resumes.
    pub async fn sweep(&self) {
        let keys = match self.store.list(FALLBACK_PREFIX).await {
            Ok(keys) => keys,
            Err(e) => {
                tracing::warn!(error = %e, "recovery: cannot list parked records");
                return;
            }
        };
        for key in keys {
            let bytes = match self.store.get(&key).await {
                Ok(Some(bytes)) => bytes,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, key, "recovery: cannot read parked record");
                    return;
                }
            };
            let parked: ParkedRecord = match serde_json::from_slice(&bytes.bytes()) {
                Ok(parked) => parked,
                Err(e) => {
                    tracing::error!(error = %e, key, "recovery: unreadable parked record; left in place");
                    continue;
                }
            };
            let ctx = RequestContext::from_headers(&parked.record.headers).unwrap_or_default();
            let mut record = parked.record;
            if !self.propagate_context {
                record
                    .headers
                    .retain(|(k, _)| k != REQUEST_ID_HEADER && k != USER_ID_HEADER);
            }
            let producer = &self.producer;
            let sent = ctx
                .scope(async {
                    let sent = producer.send(record).await;
                    match &sent {
                        Ok(d) => tracing::info!(
                            key,
                            partition = d.partition,
                            offset = d.offset,
                            "recovery: parked record re-produced"
                        ),
                        Err(e) => tracing::warn!(error = %e, key, "recovery: re-produce failed"),
                    }
                    sent
                })
                .await;
            if sent.is_err() {
                return;
            }
            self.env.mark(coverage::EVENT_RECOVERED);
            if let Err(e) = self.store.delete(&key).await {
                tracing::warn!(error = %e, key, "recovery: delete failed; will re-produce");
                return;
            }
        }
    }
}
