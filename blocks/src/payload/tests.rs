//! Tests of the payload block against in-memory doubles of the ports.

use super::Strategy;
use super::*;
use async_trait::async_trait;
use pitfall_ports::{
    Blob, ConsumerRecord, Database, DbError, Delivery, ObjectStore, ProduceError, Producer,
    ProducerRecord, Row, StoreError, Transaction,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A log of partitions: the tests' broker and [`ChunkSource`].
struct Log {
    max: usize,
    partitions: Mutex<BTreeMap<(String, u32), Vec<ConsumerRecord>>>,
}

impl Log {
    fn new(max: usize) -> Arc<Log> {
        Arc::new(Log {
            max,
            partitions: Mutex::default(),
        })
    }

    /// Append without the size check, as the broker would.
    fn append(&self, record: ProducerRecord) -> ConsumerRecord {
        let partition = record.key.bytes().map(u32::from).sum::<u32>() % 2;
        let mut partitions = self.partitions.lock().unwrap();
        let log = partitions
            .entry((record.topic.clone(), partition))
            .or_default();
        let appended = ConsumerRecord {
            topic: record.topic,
            partition,
            offset: log.len() as u64,
            key: record.key,
            value: record.value,
            headers: record.headers,
        };
        log.push(appended.clone());
        appended
    }

    fn records(&self) -> Vec<ConsumerRecord> {
        self.partitions
            .lock()
            .unwrap()
            .values()
            .flatten()
            .cloned()
            .collect()
    }
}

#[async_trait]
impl Producer for Log {
    async fn send(&self, record: ProducerRecord) -> Result<Delivery, ProduceError> {
        if !fits(&record, self.max) {
            return Err(ProduceError::MessageTooLarge {
                size: record_size(&record),
                max: self.max,
                at_least: false,
            });
        }
        let r = self.append(record);
        Ok(Delivery {
            partition: r.partition,
            offset: r.offset,
        })
    }
}

#[async_trait]
impl ChunkSource for Log {
    async fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        to: u64,
    ) -> Result<Vec<ConsumerRecord>, PayloadError> {
        let partitions = self.partitions.lock().unwrap();
        let log = partitions.get(&(topic.to_string(), partition));
        Ok(log.into_iter().flatten()).map(|rs| {
            rs.filter(|r| (from..=to).contains(&r.offset))
                .cloned()
                .collect()
        })
    }
}

#[derive(Default)]
struct Store {
    objects: Mutex<BTreeMap<String, Blob>>,
    down: bool,
}

#[async_trait]
impl ObjectStore for Store {
    async fn put(&self, key: &str, data: Blob) -> Result<(), StoreError> {
        if self.down {
            return Err(StoreError::Unavailable("down".into()));
        }
        self.objects.lock().unwrap().insert(key.to_string(), data);
        Ok(())
    }
    async fn get(&self, key: &str) -> Result<Option<Blob>, StoreError> {
        Ok(self.objects.lock().unwrap().get(key).cloned())
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let objects = self.objects.lock().unwrap();
        Ok(objects
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.objects.lock().unwrap().remove(key);
        Ok(())
    }
}

type Rows = Arc<Mutex<BTreeMap<(String, String), Row>>>;

#[derive(Default)]
struct Db(Rows);

/// Writes are buffered and applied on commit (`None`: deleted).
struct Tx {
    rows: Rows,
    writes: BTreeMap<(String, String), Option<Row>>,
}

#[async_trait]
impl Database for Db {
    async fn begin(&self) -> Result<Box<dyn Transaction>, DbError> {
        Ok(Box::new(Tx {
            rows: self.0.clone(),
            writes: BTreeMap::new(),
        }))
    }
}

#[async_trait]
impl Transaction for Tx {
    async fn get(&mut self, table: &str, key: &str) -> Result<Option<Row>, DbError> {
        let k = (table.to_string(), key.to_string());
        match self.writes.get(&k) {
            Some(written) => Ok(written.clone()),
            None => Ok(self.rows.lock().unwrap().get(&k).cloned()),
        }
    }
    async fn insert(
        &mut self,
        table: &str,
        key: &str,
        data: serde_json::Value,
    ) -> Result<(), DbError> {
        if self.get(table, key).await?.is_some() {
            let (table, key) = (table.to_string(), key.to_string());
            return Err(DbError::UniqueViolation { table, key });
        }
        let row = Row {
            key: key.to_string(),
            version: 1,
            data,
        };
        self.writes
            .insert((table.to_string(), key.to_string()), Some(row));
        Ok(())
    }
    async fn update(
        &mut self,
        table: &str,
        key: &str,
        expected: u64,
        data: serde_json::Value,
    ) -> Result<bool, DbError> {
        match self.get(table, key).await? {
            Some(row) if row.version == expected => {
                let row = Row {
                    version: expected + 1,
                    data,
                    ..row
                };
                self.writes
                    .insert((table.to_string(), key.to_string()), Some(row));
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    async fn delete(&mut self, table: &str, key: &str) -> Result<bool, DbError> {
        let found = self.get(table, key).await?.is_some();
        if found {
            self.writes
                .insert((table.to_string(), key.to_string()), None);
        }
        Ok(found)
    }
    async fn commit(self: Box<Self>) -> Result<(), DbError> {
        let mut rows = self.rows.lock().unwrap();
        for (k, written) in self.writes {
            match written {
                Some(row) => rows.insert(k, row),
                None => rows.remove(&k),
            };
        }
        Ok(())
    }
    async fn rollback(self: Box<Self>) {}
}

struct Ports {
    log: Arc<Log>,
    store: Arc<Store>,
    db: Arc<Db>,
}

impl Ports {
    fn new(max: usize) -> Ports {
        Ports {
            log: Log::new(max),
            store: Arc::new(Store::default()),
            db: Arc::new(Db::default()),
        }
    }

    fn reassembler(&self, strategy: Strategy) -> Reassembler {
        match strategy {
            Strategy::Inline => Reassembler::inline(),
            Strategy::Compressed => Reassembler::compressed(),
            Strategy::ChunkedStore => Reassembler::chunked_store(self.db.clone()),
            Strategy::ChunkedSeek => Reassembler::chunked_seek(self.log.clone()),
            Strategy::ClaimCheck | Strategy::ClaimCheckNaive => {
                Reassembler::claim_check(self.store.clone())
            }
        }
    }
}

fn records(planned: &[Planned]) -> Vec<ProducerRecord> {
    let records = planned.iter().filter_map(|p| match p {
        Planned::Record(r) => Some(r.clone()),
        Planned::Upload { .. } => None,
    });
    records.collect()
}

/// `records` with some duplicated and all shuffled, the way retries and
/// `max_in_flight > 1` can leave a partition.
fn mess_up(records: Vec<ProducerRecord>, seed: u64) -> Vec<ProducerRecord> {
    let mut state = seed;
    let mut out = Vec::new();
    for r in records {
        if splitmix64(&mut state).is_multiple_of(4) {
            out.push(r.clone());
        }
        out.push(r);
    }
    for i in (1..out.len()).rev() {
        out.swap(i, (splitmix64(&mut state) % (i as u64 + 1)) as usize);
    }
    out
}

/// Flip a bit of the byte at `at`: corruption on the way.
fn flip(value: &mut Blob, at: usize) {
    let mut bytes = value.to_vec();
    bytes[at] ^= 0x20;
    *value = bytes.into();
}

/// One step of splitmix64, for the tests' own shuffles.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(future)
}

const TOPIC: &str = "attachments";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_strategy_and_codec_survives_duplicates_and_reordering(
        strategy in proptest::sample::select(Strategy::ALL.to_vec()),
        codec in proptest::sample::select(Codec::ALL.to_vec()),
        size in 0usize..200_000,
        chunk_size in 4_096usize..65_536,
        seed in any::<u64>(),
    ) {
        let attachment = Attachment::generate("doc-1", size, seed);
        let planned = encode(strategy, codec, &attachment, TOPIC, "k", chunk_size, chunk_size + 512)
            .unwrap();
        let ports = Ports::new(usize::MAX);
        for step in &planned {
            if let Planned::Upload { object_key, bytes } = step {
                ports.store.objects.lock().unwrap().insert(object_key.clone(), bytes.clone());
            }
        }
        for r in mess_up(records(&planned), seed) {
            ports.log.append(r);
        }
        let mut reassembler = ports.reassembler(strategy);
        let mut assembled = Vec::new();
        for r in ports.log.records() {
            assembled.extend(block_on(reassembler.accept(&r)).unwrap());
        }
        prop_assert!(!assembled.is_empty());
        if strategy == Strategy::ChunkedSeek {
            prop_assert_eq!(assembled.len(), 1);
        }
        for a in assembled {
            prop_assert!(a.digest_ok);
            prop_assert_eq!(a.id.as_str(), "doc-1");
            prop_assert_eq!(a.bytes.digest(), attachment.digest());
        }
    }

    #[test]
    fn generated_attachments_compress_by_more_than_one_and_a_half(
        size in 16_384usize..1_048_576,
        seed in any::<u64>(),
    ) {
        let attachment = Attachment::generate("doc", size, seed);
        for codec in Codec::ALL {
            let compressed = codec.compress(&attachment.bytes());
            let ratio = size as f64 / compressed.len() as f64;
            prop_assert!(ratio > 1.5, "{} ratio {ratio:.2}", codec.name());
            prop_assert_eq!(codec.decompress(&compressed).unwrap(), attachment.bytes().to_vec());
        }
    }

    #[test]
    fn chunks_fit_where_inline_does_not(
        size in 1usize..300_000,
        max in 1_024usize..100_000,
        seed in any::<u64>(),
    ) {
        let attachment = Attachment::generate("doc", size, seed);
        let inline = records(&encode(Strategy::Inline, Codec::Lz4, &attachment, TOPIC, "k", 1, max).unwrap());
        prop_assert_eq!(inline.len(), 1);
        prop_assert_eq!(fits(&inline[0], max), record_size(&inline[0]) <= max);
        if size > max {
            prop_assert!(!fits(&inline[0], max));
        }
        let chunked = encode(Strategy::ChunkedSeek, Codec::Lz4, &attachment, TOPIC, "k", max - 256, max).unwrap();
        prop_assert_eq!(chunked.len(), size.div_ceil(max - 256));
        for r in records(&chunked) {
            prop_assert!(fits(&r, max), "{} > {max}", record_size(&r));
        }
    }
}

#[test]
fn names_match_serde_and_generation_is_deterministic() {
    for s in Strategy::ALL {
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            format!("\"{}\"", s.name())
        );
        assert!(!s.describe().is_empty());
    }
    for c in Codec::ALL {
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            format!("\"{}\"", c.name())
        );
        assert_eq!(Codec::from_name(c.name()), Some(c));
        assert!(
            c.decompress(&[0xff; 64]).is_err(),
            "{} took garbage",
            c.name()
        );
    }
    let a = Attachment::generate("a", 20 << 20, 7);
    assert_eq!(a.bytes().len(), 20 << 20);
    assert_eq!(
        a.bytes()[..4096],
        Attachment::generate("a", 4096, 7).bytes()[..]
    );
    assert_ne!(
        a.bytes()[..4096],
        Attachment::generate("a", 4096, 8).bytes()[..]
    );
    // The content itself is pinned in pitfall_ports::blob's tests; an
    // attachment's digest is BLAKE3 of it.
    let a = Attachment::generate("a", 1 << 20, 7);
    assert_eq!(a.digest(), blake3::hash(&a.bytes()).to_hex().as_str());
    assert_eq!(digest(b"abc").len(), 64);
    assert!(digest(b"abc").starts_with("6437b3ac"));
}

#[tokio::test]
async fn inline_too_large_is_rejected_by_the_broker() {
    let ports = Ports::new(10_000);
    let attachment = Attachment::generate("big", 50_000, 1);
    let planned = encode(
        Strategy::Inline,
        Codec::Zstd,
        &attachment,
        TOPIC,
        "k",
        1,
        10_000,
    );
    let err = send_payload(ports.log.as_ref(), ports.store.as_ref(), planned.unwrap()).await;
    assert!(
        matches!(err, Err(PayloadError::TooLarge { ref payload_id, max: 10_000, .. }) if payload_id == "big")
    );
    assert!(ports.log.records().is_empty());
    let chunk_too_big = encode(
        Strategy::ChunkedStore,
        Codec::Zstd,
        &attachment,
        TOPIC,
        "k",
        10_000,
        10_000,
    );
    assert!(matches!(chunk_too_big, Err(PayloadError::TooLarge { .. })));
}

#[tokio::test]
async fn claim_check_uploads_before_the_reference() {
    let ports = Ports::new(1_000);
    let attachment = Attachment::generate("doc", 100_000, 2);
    let planned = encode(
        Strategy::ClaimCheck,
        Codec::Lz4,
        &attachment,
        TOPIC,
        "k",
        1,
        1_000,
    )
    .unwrap();
    assert!(matches!(
        planned.as_slice(),
        [Planned::Upload { .. }, Planned::Record(_)]
    ));
    let sent = send_payload(ports.log.as_ref(), ports.store.as_ref(), planned)
        .await
        .unwrap();
    assert_eq!(sent.uploaded, vec!["payloads/doc".to_string()]);
    assert_eq!(sent.deliveries.len(), 1);
    let record = &ports.log.records()[0];
    let assembled = ports
        .reassembler(Strategy::ClaimCheck)
        .accept(record)
        .await
        .unwrap()
        .unwrap();
    assert!(assembled.digest_ok);
    assert_eq!(&assembled.bytes, attachment.content());
}

#[tokio::test]
async fn naive_claim_check_reference_dangles_until_uploaded() {
    let ports = Ports::new(1_000);
    let attachment = Attachment::generate("doc", 100_000, 3);
    let planned = encode(
        Strategy::ClaimCheckNaive,
        Codec::Lz4,
        &attachment,
        TOPIC,
        "k",
        1,
        1_000,
    )
    .unwrap();
    let [Planned::Record(reference), Planned::Upload { object_key, bytes }] = planned.as_slice()
    else {
        panic!("the naive claim check produces first: {planned:?}");
    };
    let record = ports.log.append(reference.clone());
    let mut reassembler = ports.reassembler(Strategy::ClaimCheckNaive);
    let err = reassembler.accept(&record).await.unwrap_err();
    assert_eq!(
        err,
        PayloadError::DanglingReference {
            object_key: object_key.clone()
        }
    );
    ports.store.put(object_key, bytes.clone()).await.unwrap();
    assert!(
        reassembler
            .accept(&record)
            .await
            .unwrap()
            .unwrap()
            .digest_ok
    );
}

#[tokio::test]
async fn naive_claim_check_dangles_when_the_upload_fails() {
    let store_down = Store {
        down: true,
        ..Store::default()
    };
    let attachment = Attachment::generate("doc", 10_000, 4);
    for (strategy, produced) in [(Strategy::ClaimCheckNaive, 1), (Strategy::ClaimCheck, 0)] {
        let log = Log::new(1_000);
        let planned = encode(strategy, Codec::Lz4, &attachment, TOPIC, "k", 1, 1_000).unwrap();
        let err = send_payload(log.as_ref(), &store_down, planned)
            .await
            .unwrap_err();
        assert!(matches!(err, PayloadError::Store { .. }), "{err}");
        assert_eq!(log.records().len(), produced, "{}", strategy.name());
    }
}

#[tokio::test]
async fn chunked_store_holds_nothing_between_chunks() {
    let ports = Ports::new(usize::MAX);
    let attachment = Attachment::generate("doc", 1 << 20, 5);
    let planned = encode(
        Strategy::ChunkedStore,
        Codec::Lz4,
        &attachment,
        TOPIC,
        "k",
        65_536,
        66_000,
    )
    .unwrap();
    let mut reassembler = ports.reassembler(Strategy::ChunkedStore);
    let chunks = records(&planned);
    for (i, r) in chunks.iter().enumerate() {
        let yielded = reassembler
            .accept(&ports.log.append(r.clone()))
            .await
            .unwrap();
        if i + 1 < chunks.len() {
            assert_eq!(yielded, None);
            assert_eq!(
                (reassembler.memory_bytes(), reassembler.peak_memory_bytes()),
                (0, 0)
            );
        } else {
            assert_eq!(&yielded.unwrap().bytes, attachment.content());
        }
    }
    assert_eq!(reassembler.memory_bytes(), 0);
    assert_eq!(reassembler.peak_memory_bytes(), 1 << 20);
    // A redelivered last chunk yields the payload again (at least once).
    let again = reassembler.accept(&ports.log.records()[15]).await.unwrap();
    let again = again.unwrap();
    assert!(again.digest_ok);
    assert_eq!(again.stored_chunks, 16);

    // Pruned, the payload leaves no row behind.
    let stored = |ports: &Ports| ports.db.0.lock().unwrap().len();
    assert_eq!(stored(&ports), 17, "16 chunks and their count");
    let mut tx = ports.db.begin().await.unwrap();
    prune_chunks(tx.as_mut(), &again).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(stored(&ports), 0);
}

#[tokio::test]
async fn chunked_seek_keeps_bookkeeping_and_peaks_at_one_payload() {
    let ports = Ports::new(usize::MAX);
    let attachment = Attachment::generate("doc", 1 << 20, 6);
    let planned = encode(
        Strategy::ChunkedSeek,
        Codec::Lz4,
        &attachment,
        TOPIC,
        "k",
        65_536,
        66_000,
    )
    .unwrap();
    let mut reassembler = ports.reassembler(Strategy::ChunkedSeek);
    let chunks: Vec<_> = records(&planned)
        .into_iter()
        .map(|r| ports.log.append(r))
        .collect();
    for r in &chunks[..15] {
        assert_eq!(reassembler.accept(r).await.unwrap(), None);
        assert!(
            (1..256).contains(&reassembler.memory_bytes()),
            "{}",
            reassembler.memory_bytes()
        );
        assert_eq!(reassembler.peak_memory_bytes(), reassembler.memory_bytes());
        assert_eq!(reassembler.pending_payloads(), 1);
        assert_eq!(
            reassembler.min_pending_offset(TOPIC, chunks[0].partition),
            Some(0)
        );
    }
    let assembled = reassembler.accept(&chunks[15]).await.unwrap().unwrap();
    assert_eq!(&assembled.bytes, attachment.content());
    assert_eq!(reassembler.pending_payloads(), 0);
    assert!(reassembler.peak_memory_bytes() >= 1 << 20);
    assert!(reassembler.peak_memory_bytes() < (1 << 20) + 256);
    // Late duplicates of a completed payload are ignored, not left pending.
    assert_eq!(reassembler.accept(&chunks[3]).await.unwrap(), None);
    assert_eq!(reassembler.pending_payloads(), 0);
}

#[tokio::test]
async fn chunked_seek_reads_back_only_its_own_chunks() {
    // Two payloads' chunks interleaved, with retried copies in between: the
    // read-back holds one payload plus at most a page, not the whole range.
    let ports = Ports::new(usize::MAX);
    let chunk = 65_536;
    let plan = |id: &str, seed| {
        let a = Attachment::generate(id, 1 << 20, seed);
        let planned = encode(
            Strategy::ChunkedSeek,
            Codec::Lz4,
            &a,
            TOPIC,
            "k",
            chunk,
            chunk + 512,
        );
        (a, records(&planned.unwrap()))
    };
    let (a, mine) = plan("a", 1);
    let (b, theirs) = plan("b", 2);
    let mut log = Vec::new();
    for (x, y) in mine.iter().zip(&theirs) {
        log.push(x.clone());
        log.push(y.clone());
        log.push(y.clone());
    }
    let mut reassembler = ports.reassembler(Strategy::ChunkedSeek);
    let mut assembled = Vec::new();
    for r in log {
        assembled.extend(reassembler.accept(&ports.log.append(r)).await.unwrap());
    }
    let digests: Vec<bool> = assembled.iter().map(|p| p.digest_ok).collect();
    assert_eq!(digests, vec![true, true]);
    assert_eq!(&assembled[0].bytes, a.content());
    assert_eq!(&assembled[1].bytes, b.content());
    let peak = reassembler.peak_memory_bytes();
    assert!(peak >= 1 << 20, "{peak}");
    assert!(peak <= (1 << 20) + 8 * chunk + 4096, "{peak}");
}

#[tokio::test]
async fn corrupt_chunk_yields_a_digest_mismatch() {
    for strategy in [Strategy::ChunkedStore, Strategy::ChunkedSeek] {
        let ports = Ports::new(usize::MAX);
        let attachment = Attachment::generate("doc", 10_000, 7);
        let planned = encode(strategy, Codec::Lz4, &attachment, TOPIC, "k", 4_000, 5_000).unwrap();
        let mut chunks = records(&planned);
        flip(&mut chunks[1].value, 17);
        let mut reassembler = ports.reassembler(strategy);
        let mut yielded = Vec::new();
        for r in chunks {
            yielded.extend(reassembler.accept(&ports.log.append(r)).await.unwrap());
        }
        let [assembled] = yielded.as_slice() else {
            panic!("{yielded:?}")
        };
        assert!(!assembled.digest_ok, "{}", strategy.name());
        assert_eq!(assembled.bytes.len(), attachment.bytes().len());
        assert_ne!(&assembled.bytes, attachment.content());
    }
}

#[tokio::test]
async fn single_record_strategies_flag_corruption() {
    let ports = Ports::new(usize::MAX);
    let attachment = Attachment::generate("doc", 10_000, 8);
    let plan = |s| records(&encode(s, Codec::Snappy, &attachment, TOPIC, "k", 1, 1_000).unwrap());
    let mut inline = ports.log.append(plan(Strategy::Inline).remove(0));
    flip(&mut inline.value, 5);
    let assembled = Reassembler::inline()
        .accept(&inline)
        .await
        .unwrap()
        .unwrap();
    assert!(!assembled.digest_ok);
    let mut compressed = ports.log.append(plan(Strategy::Compressed).remove(0));
    compressed.value = compressed.value.slice(0..100);
    let assembled = Reassembler::compressed()
        .accept(&compressed)
        .await
        .unwrap()
        .unwrap();
    assert!(!assembled.digest_ok);
    let mut unknown = compressed.clone();
    for (k, v) in &mut unknown.headers {
        if k == PAYLOAD_CODEC {
            *v = "brotli".into();
        }
    }
    assert!(Reassembler::compressed().accept(&unknown).await.is_err());
    let reference = ports.log.append(plan(Strategy::ClaimCheck).remove(0));
    ports
        .store
        .put("payloads/doc", "tampered".into())
        .await
        .unwrap();
    let mut claim = ports.reassembler(Strategy::ClaimCheck);
    assert!(!claim.accept(&reference).await.unwrap().unwrap().digest_ok);
}

#[tokio::test]
async fn chunked_seek_never_yields_a_payload_missing_from_the_log() {
    let ports = Ports::new(usize::MAX);
    let attachment = Attachment::generate("doc", 10_000, 9);
    let planned = encode(
        Strategy::ChunkedSeek,
        Codec::Lz4,
        &attachment,
        TOPIC,
        "k",
        4_000,
        5_000,
    );
    let [first, lost, last] = records(&planned.unwrap()).try_into().unwrap();
    let first = ports.log.append(first);
    // `lost` is delivered at offset 1 but is not in the log read back.
    let lost = ConsumerRecord {
        offset: 1,
        value: lost.value,
        headers: lost.headers,
        ..first.clone()
    };
    let last = ports.log.append(last);
    let mut reassembler = ports.reassembler(Strategy::ChunkedSeek);
    assert_eq!(reassembler.accept(&first).await, Ok(None));
    assert_eq!(reassembler.accept(&lost).await, Ok(None));
    let err = reassembler.accept(&last).await.unwrap_err();
    assert!(
        matches!(err, PayloadError::Corrupt { ref reason, .. } if reason.starts_with("2 of 3")),
        "{err}"
    );
}

/// An attachment said to be chunked has the same digest, and the same
/// chunks, as one that is not.
#[test]
fn a_chunked_attachment_is_the_same_attachment() {
    let plain = Attachment::generate("doc", 300_000, 17);
    let chunked = Attachment::generate("doc", 300_000, 17).chunked(65_536);
    assert_eq!(chunked.digest(), plain.digest());
    assert_eq!(chunked.digest(), digest(&plain.bytes()));
    let plan = |a: &Attachment| {
        records(
            &encode(
                Strategy::ChunkedSeek,
                Codec::Lz4,
                a,
                TOPIC,
                "k",
                65_536,
                70_000,
            )
            .unwrap(),
        )
    };
    assert_eq!(plan(&chunked), plan(&plain));
}
