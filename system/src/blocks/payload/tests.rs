//! Tests of the payload block against in-memory doubles of the ports.

use super::Strategy;
use super::*;
use crate::ports::{
    ConsumerRecord, Delivery, ObjectStore, ProduceError, Producer, ProducerRecord, StoreError,
};
use async_trait::async_trait;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A log of partitions: the tests' broker.
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
            });
        }
        let r = self.append(record);
        Ok(Delivery {
            partition: r.partition,
            offset: r.offset,
        })
    }
}

#[derive(Default)]
struct Store {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    down: bool,
}

#[async_trait]
impl ObjectStore for Store {
    async fn put(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        if self.down {
            return Err(StoreError::Unavailable("down".into()));
        }
        self.objects.lock().unwrap().insert(key.to_string(), data);
        Ok(())
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
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

struct Ports {
    log: Arc<Log>,
    store: Arc<Store>,
}

impl Ports {
    fn new(max: usize) -> Ports {
        Ports {
            log: Log::new(max),
            store: Arc::new(Store::default()),
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

const TOPIC: &str = "attachments";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn generated_attachments_compress_by_more_than_one_and_a_half(
        size in 16_384usize..1_048_576,
        seed in any::<u64>(),
    ) {
        let attachment = Attachment::generate("doc", size, seed);
        for codec in Codec::ALL {
            let compressed = codec.compress(&attachment.bytes);
            let ratio = size as f64 / compressed.len() as f64;
            prop_assert!(ratio > 1.5, "{} ratio {ratio:.2}", codec.name());
            prop_assert_eq!(&codec.decompress(&compressed).unwrap(), &attachment.bytes);
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
    assert_eq!(a.bytes.len(), 20 << 20);
    assert_eq!(
        a.bytes[..4096],
        Attachment::generate("a", 4096, 7).bytes[..]
    );
    assert_ne!(
        a.bytes[..4096],
        Attachment::generate("a", 4096, 8).bytes[..]
    );
    assert_eq!(digest(b"abc").len(), 64);
    assert!(digest(b"abc").starts_with("ba7816bf"));
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
    let stored = ports.store.get("payloads/doc").await.unwrap();
    assert_eq!(stored.as_deref(), Some(attachment.bytes.as_slice()));
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
