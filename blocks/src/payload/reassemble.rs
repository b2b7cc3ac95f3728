//! The consumer side: a [`Reassembler`] takes a payload's records one at a
//! time and yields the attachment once it is complete, keeping count of the
//! bytes it holds in memory on the way.
//!
//! It never yields an incomplete payload. It yields one whose digest does not
//! match (`digest_ok: false`) only when every part is there but the bytes are
//! wrong: corruption, which the caller must see rather than have hidden.

use super::{
    ClaimReference, Codec, PayloadError, CHUNK_COUNT, CHUNK_INDEX, PAYLOAD_CODEC, PAYLOAD_DIGEST,
    PAYLOAD_ID,
};
use async_trait::async_trait;
use pitfall_ports::{
    coverage, Blob, ConsumerRecord, Database, DbError, Env, ObjectStore, Transaction,
};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// The consumer DB table where [`Reassembler::chunked_store`] keeps chunks,
/// keyed `{payload_id}/{index}`, and its count of them, `{payload_id}/received`.
/// Rows stay after assembly until the caller deletes them with
/// [`prune_chunks`], in the transaction that stores what it did with the
/// payload: then a crash never leaves the payload neither done nor whole.
pub const CHUNKS: &str = "payload_chunks";

/// How many completed payload ids the seek style remembers, to ignore late
/// duplicates of their chunks.
const RECENT: usize = 1024;

/// A complete payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assembled {
    pub id: String,
    pub bytes: Blob,
    /// The bytes' lowercase hex BLAKE3, computed once here.
    pub digest: String,
    /// Whether the bytes have the digest the producer sent.
    pub digest_ok: bool,
    /// How many chunks of it are stored in [`CHUNKS`] (style a), for
    /// [`prune_chunks`]; 0 for the other styles.
    pub stored_chunks: u32,
}

/// Delete an assembled payload's rows from [`CHUNKS`] in `tx`: its chunks
/// and its count. Nothing for a payload no chunk of which was stored.
pub async fn prune_chunks(tx: &mut dyn Transaction, assembled: &Assembled) -> Result<(), DbError> {
    if assembled.stored_chunks == 0 {
        return Ok(());
    }
    for i in 0..assembled.stored_chunks {
        tx.delete(CHUNKS, &format!("{}/{i}", assembled.id)).await?;
    }
    tx.delete(CHUNKS, &format!("{}/received", assembled.id))
        .await
        .map(|_| ())
}

/// Reads a range of a partition back, for [`Reassembler::chunked_seek`].
#[async_trait]
pub trait ChunkSource: Send + Sync {
    /// The records of `topic`/`partition` at offsets `from_offset..=to_offset`.
    async fn read(
        &self,
        topic: &str,
        partition: u32,
        from_offset: u64,
        to_offset: u64,
    ) -> Result<Vec<ConsumerRecord>, PayloadError>;
}

/// Where the seek style has seen a payload's chunks: the offset of the
/// first copy of each.
struct Pending {
    at: BTreeMap<u32, u64>,
}

/// Records the seek style reads back per request: what it holds beyond the
/// payload itself.
const SEEK_PAGE: usize = 8;

/// The offsets to read back, as inclusive ranges of at most [`SEEK_PAGE`]
/// consecutive offsets.
fn seek_ranges(offsets: impl IntoIterator<Item = u64>) -> Vec<(u64, u64)> {
    let mut sorted: Vec<u64> = offsets.into_iter().collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for o in sorted {
        match ranges.last_mut() {
            Some((from, to)) if *to + 1 == o && (o - *from) < SEEK_PAGE as u64 => *to = o,
            _ => ranges.push((o, o)),
        }
    }
    ranges
}

enum Mode {
    Inline,
    Compressed,
    ClaimCheck(Arc<dyn ObjectStore>),
    ChunkedStore(Arc<dyn Database>),
    ChunkedSeek {
        source: Arc<dyn ChunkSource>,
        pending: BTreeMap<(String, u32, String), Pending>,
        recent: VecDeque<String>,
    },
}

pub struct Reassembler {
    mode: Mode,
    memory: Memory,
    /// Where coverage events are marked, if anywhere.
    env: Option<Arc<dyn Env>>,
    /// Chunks this reassembler stored itself, per payload (style a).
    stored_here: BTreeMap<String, u32>,
}

/// Bytes held: between records, and the most at any moment.
#[derive(Default)]
struct Memory {
    current: usize,
    peak: usize,
}

impl Memory {
    fn set(&mut self, current: usize) {
        self.current = current;
        self.peak = self.peak.max(current);
    }

    /// Count `bytes` as held, on top of what is held between records, for a
    /// moment.
    fn spike(&mut self, bytes: usize) {
        self.peak = self.peak.max(self.current + bytes);
    }
}

/// The headers every record of a payload has.
struct Meta {
    id: String,
    digest: String,
}

fn bad(record: &ConsumerRecord, problem: String) -> PayloadError {
    PayloadError::BadRecord {
        topic: record.topic.clone(),
        partition: record.partition,
        offset: record.offset,
        problem,
    }
}

fn header<'a>(record: &'a ConsumerRecord, name: &str) -> Result<&'a str, PayloadError> {
    record
        .header(name)
        .ok_or_else(|| bad(record, format!("no {name} header")))
}

fn number<T: std::str::FromStr>(record: &ConsumerRecord, name: &str) -> Result<T, PayloadError> {
    let value = header(record, name)?;
    value
        .parse()
        .map_err(|_| bad(record, format!("{name} is not a number: {value:?}")))
}

fn meta(record: &ConsumerRecord) -> Result<Meta, PayloadError> {
    Ok(Meta {
        id: header(record, PAYLOAD_ID)?.to_string(),
        digest: header(record, PAYLOAD_DIGEST)?.to_string(),
    })
}

/// `(index, count)` of a chunk, with `index < count`.
fn chunk_position(record: &ConsumerRecord) -> Result<(u32, u32), PayloadError> {
    let (index, count) = (number(record, CHUNK_INDEX)?, number(record, CHUNK_COUNT)?);
    if index >= count {
        return Err(bad(record, format!("chunk {index} of {count}")));
    }
    Ok((index, count))
}

impl Reassembler {
    fn with(mode: Mode) -> Self {
        Reassembler {
            mode,
            memory: Memory::default(),
            env: None,
            stored_here: BTreeMap::new(),
        }
    }

    /// Mark coverage events through `env`: a claim-check object read before
    /// it existed, a chunked payload completed from chunks a predecessor
    /// stored.
    pub fn marking(mut self, env: Arc<dyn Env>) -> Self {
        self.env = Some(env);
        self
    }

    fn mark(&self, event: &str) {
        if let Some(env) = &self.env {
            env.mark(event);
        }
    }

    /// For [`super::Strategy::Inline`]: each record is a payload.
    pub fn inline() -> Self {
        Self::with(Mode::Inline)
    }

    /// For [`super::Strategy::Compressed`]: each record is a payload,
    /// compressed with the codec its header names.
    pub fn compressed() -> Self {
        Self::with(Mode::Compressed)
    }

    /// For both claim-check strategies: each record is a reference, resolved
    /// through `store`.
    pub fn claim_check(store: Arc<dyn ObjectStore>) -> Self {
        Self::with(Mode::ClaimCheck(store))
    }

    /// Style a: each chunk goes to the [`CHUNKS`] table as it arrives, so no
    /// payload bytes are held between records and a restarted consumer loses
    /// nothing. Duplicated and reordered chunks are fine. A duplicate chunk of
    /// a complete payload yields it again (at least once: the record that
    /// completed it may be redelivered after a crash). After a
    /// [`PayloadError::Db`] error, offer the same record again.
    pub fn chunked_store(db: Arc<dyn Database>) -> Self {
        Self::with(Mode::ChunkedStore(db))
    }

    /// Style b: only remembers, per payload, the offsets of the first and
    /// last chunk seen and which indexes were seen; once all were, reads the
    /// range back through `source` and keeps the first copy of each index.
    /// Chunks of one payload share a key, so they are on one partition, in
    /// order unless producer retries reorder them (which is fine too). A
    /// consumer must not commit past [`Reassembler::min_pending_offset`]: the
    /// bookkeeping is in memory, so after a restart the chunks must be read
    /// again. Late duplicates of the last 1024 completed payloads are ignored.
    pub fn chunked_seek(source: Arc<dyn ChunkSource>) -> Self {
        Self::with(Mode::ChunkedSeek {
            source,
            pending: BTreeMap::new(),
            recent: VecDeque::new(),
        })
    }

    /// Bytes held between records: buffered payload bytes (none, in every
    /// strategy) plus an estimate of the seek style's bookkeeping.
    pub fn memory_bytes(&self) -> usize {
        self.memory.current
    }

    /// The most bytes held at any moment, including while a payload is
    /// assembled (the assembled payload itself counts until it is yielded).
    pub fn peak_memory_bytes(&self) -> usize {
        self.memory.peak
    }

    /// Payloads with some but not all chunks seen (seek style only).
    pub fn pending_payloads(&self) -> usize {
        match &self.mode {
            Mode::ChunkedSeek { pending, .. } => pending.len(),
            _ => 0,
        }
    }

    /// The lowest offset of `topic`/`partition` a pending payload still needs
    /// to read back (seek style only): the consumer may commit up to it.
    pub fn min_pending_offset(&self, topic: &str, partition: u32) -> Option<u64> {
        match &self.mode {
            Mode::ChunkedSeek { pending, .. } => pending
                .iter()
                .filter(|((t, p, _), _)| t == topic && *p == partition)
                .filter_map(|(_, pending)| pending.at.values().min().copied())
                .min(),
            _ => None,
        }
    }

    fn finish(&mut self, meta: Meta, bytes: Blob) -> Option<Assembled> {
        self.memory.spike(bytes.len());
        let digest = bytes.digest();
        Some(Assembled {
            digest_ok: digest == meta.digest,
            digest,
            id: meta.id,
            bytes,
            stored_chunks: 0,
        })
    }

    /// Take the next record; the payload it completes, if any.
    pub async fn accept(
        &mut self,
        record: &ConsumerRecord,
    ) -> Result<Option<Assembled>, PayloadError> {
        let meta = meta(record)?;
        match &mut self.mode {
            Mode::Inline => Ok(self.finish(meta, record.value.clone())),
            // Batch compression is the clients' business: the consumer
            // hands over the bytes decompressed. The header must still name
            // a codec the producer could have used.
            Mode::Compressed => {
                let name = header(record, PAYLOAD_CODEC)?;
                Codec::from_name(name)
                    .ok_or_else(|| bad(record, format!("unknown codec {name:?}")))?;
                Ok(self.finish(meta, record.value.clone()))
            }
            Mode::ClaimCheck(store) => {
                let reference: ClaimReference = serde_json::from_slice(&record.value.bytes())
                    .map_err(|e| bad(record, format!("not a claim reference: {e}")))?;
                let object_key = reference.object_key;
                match store.get(&object_key).await {
                    Ok(Some(bytes)) => Ok(self.finish(meta, bytes)),
                    Ok(None) => {
                        self.mark(coverage::CLAIM_CHECK_READ_BEFORE_EXISTS);
                        Err(PayloadError::DanglingReference { object_key })
                    }
                    Err(source) => Err(PayloadError::Store { object_key, source }),
                }
            }
            Mode::ChunkedStore(db) => {
                let db = db.clone();
                let (index, count) = chunk_position(record)?;
                let db_err = |source| PayloadError::Db {
                    payload_id: meta.id.clone(),
                    source,
                };
                let stored = store_chunk(db.as_ref(), &meta.id, index, count, record.value.clone())
                    .await
                    .map_err(db_err)?;
                if stored.fresh {
                    *self.stored_here.entry(meta.id.clone()).or_default() += 1;
                }
                if !stored.complete {
                    return Ok(None);
                }
                let here = self.stored_here.remove(&meta.id).unwrap_or(0);
                if stored.fresh && here < count {
                    self.mark(coverage::CHUNKS_REASSEMBLED_ACROSS_RESTART);
                }
                // Read the chunks back one by one into the payload: the
                // payload is all this holds, and only until it is yielded.
                let mut tx = db.begin().await.map_err(db_err)?;
                let mut chunks = Vec::with_capacity(count as usize);
                for i in 0..count {
                    let stored = tx.get_bytes(CHUNKS, &format!("{}/{i}", meta.id)).await;
                    match stored.map_err(db_err)? {
                        Some(Some(chunk)) => chunks.push(chunk),
                        _ => {
                            tx.rollback().await;
                            return Err(PayloadError::Corrupt {
                                payload_id: meta.id,
                                reason: format!(
                                    "stored chunk {i} of {count} is missing or unreadable"
                                ),
                            });
                        }
                    }
                }
                tx.rollback().await;
                // Chunks of generated content in order are its view again.
                let bytes = Blob::concat(chunks);
                let assembled = self.finish(meta, bytes);
                Ok(assembled.map(|a| Assembled {
                    stored_chunks: count,
                    ..a
                }))
            }
            Mode::ChunkedSeek {
                source,
                pending,
                recent,
            } => {
                let source = source.clone();
                let (index, count) = chunk_position(record)?;
                if recent.contains(&meta.id) {
                    return Ok(None);
                }
                let key = (record.topic.clone(), record.partition, meta.id.clone());
                let entry = pending.entry(key.clone()).or_insert(Pending {
                    at: BTreeMap::new(),
                });
                entry.at.entry(index).or_insert(record.offset);
                if entry.at.len() < count as usize {
                    self.memory.set(seek_bookkeeping(pending, recent));
                    return Ok(None);
                }
                let done = pending.remove(&key).expect("just updated");
                recent.push_back(meta.id.clone());
                if recent.len() > RECENT {
                    recent.pop_front();
                }
                self.memory.set(seek_bookkeeping(pending, recent));
                // Seek back to this payload's own chunks only, a page at a
                // time: memory is the payload plus one page, however many
                // other records lie between its first and last chunk.
                let mut chunks: BTreeMap<u32, Blob> = BTreeMap::new();
                let mut held = 0;
                for (from, to) in seek_ranges(done.at.values().copied()) {
                    let read = source.read(&record.topic, record.partition, from, to);
                    let page = match read.await {
                        Ok(page) => page,
                        Err(e) => {
                            // Still pending: the record may be offered again.
                            recent.retain(|r| *r != meta.id);
                            pending.insert(key, done);
                            self.memory.set(seek_bookkeeping(pending, recent));
                            return Err(e);
                        }
                    };
                    self.memory
                        .spike(held + page.iter().map(|r| r.value.len()).sum::<usize>());
                    for r in page {
                        if r.header(PAYLOAD_ID) == Some(meta.id.as_str()) {
                            if let Ok((i, _)) = chunk_position(&r) {
                                if let std::collections::btree_map::Entry::Vacant(slot) =
                                    chunks.entry(i)
                                {
                                    held += r.value.len();
                                    slot.insert(r.value);
                                }
                            }
                        }
                    }
                }
                if chunks.len() != count as usize {
                    let offsets: Vec<u64> = done.at.values().copied().collect();
                    return Err(PayloadError::Corrupt {
                        payload_id: meta.id,
                        reason: format!(
                            "{} of {count} chunks at offsets {}..={}",
                            chunks.len(),
                            offsets.iter().min().unwrap_or(&0),
                            offsets.iter().max().unwrap_or(&0)
                        ),
                    });
                }
                // Chunks of generated content in order are its view again.
                Ok(self.finish(meta, Blob::concat(chunks.into_values())))
            }
        }
    }
}

/// An estimate of the seek style's bookkeeping, in bytes.
fn seek_bookkeeping(
    pending: &BTreeMap<(String, u32, String), Pending>,
    recent: &VecDeque<String>,
) -> usize {
    let pending: usize = pending
        .iter()
        .map(|((topic, _, id), p)| topic.len() + id.len() + 20 + 12 * p.at.len())
        .sum();
    pending + recent.iter().map(String::len).sum::<usize>()
}

/// What storing a chunk did.
struct StoredChunk {
    /// The chunk was new (not a duplicate).
    fresh: bool,
    /// The payload is complete: also when the chunk is a duplicate of a
    /// complete payload's.
    complete: bool,
}

/// Store one chunk and count it, in one transaction.
async fn store_chunk(
    db: &dyn Database,
    id: &str,
    index: u32,
    count: u32,
    chunk: Blob,
) -> Result<StoredChunk, DbError> {
    let chunk_key = format!("{id}/{index}");
    let received_key = format!("{id}/received");
    let received = |row: &Option<pitfall_ports::Row>| {
        row.as_ref()
            .and_then(|r| r.data["received"].as_u64())
            .unwrap_or(0)
    };
    let mut tx = db.begin().await?;
    // The chunk goes in a column for bytes where the DB adapter has one
    // (the simulated DB); as base64 in the row's JSON otherwise.
    let data = serde_json::json!({});
    let fresh = match tx.insert_bytes(CHUNKS, &chunk_key, data, chunk).await {
        Ok(()) => true,
        Err(DbError::UniqueViolation { .. }) => false,
        Err(e) => {
            tx.rollback().await;
            return Err(e);
        }
    };
    if !fresh {
        // A failed statement aborts a Postgres transaction: read afresh.
        tx.rollback().await;
        let mut tx = db.begin().await?;
        let row = tx.get(CHUNKS, &received_key).await?;
        tx.rollback().await;
        return Ok(StoredChunk {
            fresh: false,
            complete: received(&row) >= u64::from(count),
        });
    }
    let row = tx.get(CHUNKS, &received_key).await?;
    let now = received(&row) + 1;
    let data = serde_json::json!({ "received": now });
    let counted = match &row {
        None => tx.insert(CHUNKS, &received_key, data).await.map(|()| true),
        Some(row) => tx.update(CHUNKS, &received_key, row.version, data).await,
    };
    match counted {
        Ok(true) => {}
        // Another consumer counted concurrently: retry the record.
        Ok(false) | Err(DbError::UniqueViolation { .. }) => {
            tx.rollback().await;
            return Err(DbError::Conflict);
        }
        Err(e) => {
            tx.rollback().await;
            return Err(e);
        }
    }
    match tx.commit().await {
        Ok(()) => Ok(StoredChunk {
            fresh: true,
            complete: now >= u64::from(count),
        }),
        // The chunk or the count was stored concurrently: retrying the
        // record finds out which.
        Err(DbError::UniqueViolation { .. }) => Err(DbError::Conflict),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod seek_tests {
    use super::{seek_ranges, SEEK_PAGE};

    #[test]
    fn ranges_cover_runs_of_own_offsets_a_page_at_most() {
        assert_eq!(seek_ranges([]), vec![]);
        assert_eq!(
            seek_ranges([7, 3, 4, 5, 9, 5]),
            vec![(3, 5), (7, 7), (9, 9)]
        );
        let run: Vec<(u64, u64)> = seek_ranges(0..20);
        assert_eq!(run, vec![(0, 7), (8, 15), (16, 19)]);
        assert!(run.iter().all(|(a, b)| b - a < SEEK_PAGE as u64));
    }
}
