//! The archive service (pitfall 4): consumes the invoices topic, puts each
//! order's attachment back together with the payload strategy's
//! [`Reassembler`], and stores it once — a row keyed by order id with the
//! digest of what it reassembled and its reassembly-memory high-water mark.
//!
//! Offsets are committed only as far as nothing is lost by a crash: a
//! payload whose chunks are held only in memory (style b, seek back) pins
//! the offset of its first chunk until it is complete.

use crate::schema::{InvoiceRow, INVOICES};
use async_trait::async_trait;
use pitfall_blocks::backoff::Backoff;
use pitfall_blocks::consume::Poller;
use pitfall_blocks::payload::{self, Assembled, ChunkSource, PayloadError, Reassembler, Strategy};
use pitfall_ports::context::RequestContext;
use pitfall_ports::{Consumer, ConsumerRecord, Database, DbError, Env, LogReader, ObjectStore};
use std::sync::Arc;

pub const GROUP: &str = "archive";
/// Consumer settings: reassembling a large attachment takes many round
/// trips between two polls, so the archive takes few records per poll and a
/// session long enough not to be expelled from its group meanwhile (which
/// would livelock it: commit rejected, records redelivered, again).
pub const SESSION_TIMEOUT_MS: u64 = 10_000;
pub const MAX_POLL_RECORDS: usize = 3;
/// How many times a reference that does not resolve is tried again before
/// the record is given up on.
const DANGLING_RETRIES: u32 = 5;

/// The reassembler for a strategy, over this service's DB, object store and
/// log reader.
pub fn reassembler(
    strategy: Strategy,
    db: Arc<dyn Database>,
    store: Arc<dyn ObjectStore>,
    reader: Arc<dyn LogReader>,
) -> Reassembler {
    match strategy {
        Strategy::Inline => Reassembler::inline(),
        Strategy::Compressed => Reassembler::compressed(),
        Strategy::ChunkedStore => Reassembler::chunked_store(db),
        Strategy::ChunkedSeek => Reassembler::chunked_seek(Arc::new(FromLog(reader))),
        Strategy::ClaimCheck | Strategy::ClaimCheckNaive => Reassembler::claim_check(store),
    }
}

/// Style b's seek back, through the broker port.
struct FromLog(Arc<dyn LogReader>);

#[async_trait]
impl ChunkSource for FromLog {
    async fn read(
        &self,
        topic: &str,
        partition: u32,
        from_offset: u64,
        to_offset: u64,
    ) -> Result<Vec<ConsumerRecord>, PayloadError> {
        self.0
            .read(topic, partition, from_offset, to_offset)
            .await
            .map_err(|e| PayloadError::ChunkRead {
                topic: topic.to_string(),
                partition,
                reason: e.to_string(),
            })
    }
}

pub struct Archive {
    poller: Poller,
    db: Arc<dyn Database>,
    reassembler: Reassembler,
    env: Arc<dyn Env>,
}

impl Archive {
    pub fn new(
        consumer: Box<dyn Consumer>,
        db: Arc<dyn Database>,
        reassembler: Reassembler,
        env: Arc<dyn Env>,
    ) -> Self {
        Archive {
            poller: Poller::new(consumer, env.clone(), "archive"),
            db,
            reassembler,
            env,
        }
    }

    pub async fn run(mut self) {
        loop {
            let records = self.poller.next().await;
            for record in &records {
                let ctx = RequestContext::from_headers(&record.headers).unwrap_or_default();
                ctx.scope(self.handle(record)).await;
                let done = record.offset + 1;
                let safe = self
                    .reassembler
                    .min_pending_offset(&record.topic, record.partition)
                    .map_or(done, |pinned| pinned.min(done));
                self.poller.handled(&record.topic, record.partition, safe);
            }
        }
    }

    /// Offer one record to the reassembler, retrying what may heal, and
    /// store the attachment it completes.
    async fn handle(&mut self, record: &ConsumerRecord) {
        let mut backoff = Backoff::new(50, 1_000);
        let mut dangling = 0;
        loop {
            // A record of an attachment already stored (a resend, a
            // redelivery) is skipped before it costs a reassembly.
            match self.archived(record).await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "archive: cannot read what is archived; retrying");
                    backoff.wait(self.env.as_ref()).await;
                    continue;
                }
            }
            match self.reassembler.accept(record).await {
                Ok(None) => return,
                Ok(Some(assembled)) => {
                    let row = InvoiceRow {
                        order_id: assembled.id.clone(),
                        size: assembled.bytes.len() as u64,
                        digest: assembled.digest.clone(),
                        peak_memory_bytes: self.reassembler.peak_memory_bytes() as u64,
                    };
                    if !assembled.digest_ok {
                        tracing::error!(
                            order = row.order_id,
                            "archive: reassembled attachment does not match its digest"
                        );
                    }
                    self.store(row, &assembled).await;
                    return;
                }
                Err(e @ PayloadError::DanglingReference { .. }) => {
                    dangling += 1;
                    if dangling > DANGLING_RETRIES {
                        tracing::error!(error = %e, offset = record.offset, "archive: giving up on the record");
                        return;
                    }
                    tracing::warn!(error = %e, "archive: reference does not resolve; retrying");
                }
                Err(
                    e @ (PayloadError::Store { .. }
                    | PayloadError::Db { .. }
                    | PayloadError::ChunkRead { .. }),
                ) => tracing::warn!(error = %e, "archive: reassembly failed; retrying"),
                Err(e) => {
                    tracing::error!(error = %e, offset = record.offset, "archive: skipping a record it cannot use");
                    return;
                }
            }
            backoff.wait(self.env.as_ref()).await;
        }
    }

    /// Whether the attachment this record belongs to is already stored.
    async fn archived(&self, record: &ConsumerRecord) -> Result<bool, DbError> {
        let Some(id) = record.header(payload::PAYLOAD_ID) else {
            return Ok(false);
        };
        let mut tx = self.db.begin().await?;
        let row = tx.get(INVOICES, id).await?;
        tx.rollback().await;
        Ok(row.is_some())
    }

    /// Insert the invoice row once; a row already there is a duplicate. The
    /// payload's stored chunks, if any, are deleted in the same transaction
    /// (or, for a duplicate, in one of their own): done, they are garbage.
    async fn store(&self, row: InvoiceRow, assembled: &Assembled) {
        let mut backoff = Backoff::new(20, 1_000);
        let data = serde_json::to_value(&row).expect("invoice serializes");
        loop {
            let result = async {
                let mut tx = self.db.begin().await?;
                let fresh = match tx.insert(INVOICES, &row.order_id, data.clone()).await {
                    Ok(()) => true,
                    Err(DbError::UniqueViolation { .. }) => {
                        tx.rollback().await;
                        if assembled.stored_chunks == 0 {
                            return Ok(false);
                        }
                        // A failed statement aborts a Postgres transaction.
                        tx = self.db.begin().await?;
                        false
                    }
                    Err(e) => return Err(e),
                };
                payload::prune_chunks(tx.as_mut(), assembled).await?;
                tx.commit().await.map(|()| fresh)
            }
            .await;
            match result {
                Ok(fresh) => {
                    tracing::info!(
                        order = row.order_id,
                        size = row.size,
                        fresh,
                        "archive: attachment stored"
                    );
                    return;
                }
                Err(DbError::UniqueViolation { .. }) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "archive: store failed; retrying");
                    backoff.wait(self.env.as_ref()).await;
                }
            }
        }
    }
}
