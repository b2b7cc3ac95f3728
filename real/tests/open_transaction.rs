//! A transaction a crashed producer leaves open holds back what
//! `read_committed` readers get (the last stable offset) until the broker
//! aborts it, past its timeout. The drain and the log read-back once took
//! each partition's end from a `read_committed` client's watermark query,
//! which answers that last stable offset: the drain ended with records
//! still to come, and the read-back silently returned the log up to the
//! open transaction (MariaDB `kafka-eos` seed 0: `output-exactly-once`
//! flagged committed transactions whose records the read-back never got).
//! Now the end is the log's, the drain counts the held-back records as lag,
//! and a read-back that cannot reach the end fails instead of returning
//! part of the log. Needs the local Kafka (`scripts/services.sh start`;
//! `scripts/test.sh` does it).

mod common;

use common::ProxiedKafka;
use pitfall_harness::history::History;
use pitfall_ports::{Broker, ProducerConfig, ProducerRecord, TxnProducer};
use pitfall_real::kafka::KafkaAdmin;
use std::time::Duration;

const TOPIC: &str = "open-txn";
/// The crashed producer's transaction timeout: the broker aborts its open
/// transaction this long after it began, at its next sweep (every 10 s by
/// Apache Kafka's default). Longer than the test takes to reach its early
/// read-back (about 5 s on a loaded machine), so that no sweep can abort
/// the transaction before then: at 3 s, one that fell in between did, now
/// and then, and the test failed for proving nothing.
const CRASHED_TIMEOUT_MS: u64 = 12_000;
/// Long enough for the broker to abort the open transaction (its timeout,
/// then up to a sweep's 10 s).
const READ_TO_END: Duration = Duration::from_secs(45);

fn record(key: &str) -> ProducerRecord {
    ProducerRecord {
        topic: TOPIC.into(),
        key: key.into(),
        value: key.into(),
        headers: vec![],
    }
}

/// Commit one transaction of `keys`; the offset of the last.
async fn commit(producer: &mut dyn TxnProducer, keys: &[&str]) -> u64 {
    producer.begin().await.expect("begin");
    let mut last = 0;
    for key in keys {
        last = producer.send(record(key)).await.expect("send").offset;
    }
    producer.commit().await.expect("commit");
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_transaction_holds_the_drain_and_the_read_back_to_the_log_end() {
    let kafka = ProxiedKafka::start("opentxn", &[]).await;
    let admin = KafkaAdmin::new(&kafka.bootstrap).unwrap();
    let topic = kafka.names.topic(TOPIC);
    admin
        .create_topics(std::slice::from_ref(&topic), 1)
        .await
        .expect("creating the topic");
    let history = History::since_now();
    let config = ProducerConfig {
        idempotent: true,
        ..ProducerConfig::default()
    };
    let mut alive =
        kafka
            .broker("inventory-1", &history)
            .txn_producer("txn-alive", &config, 10_000);
    let first = commit(alive.as_mut(), &["a0", "a1"]).await;

    // inventory-2 writes inside a transaction, then crashes: dropped with
    // the transaction open.
    let mut crashed = kafka.broker("inventory-2", &history).txn_producer(
        "txn-crashed",
        &config,
        CRASHED_TIMEOUT_MS,
    );
    crashed.begin().await.expect("begin");
    let open_at = crashed.send(record("b0")).await.expect("send").offset;
    drop(crashed);
    let last = commit(alive.as_mut(), &["a2", "a3"]).await;
    assert!(first < open_at && open_at < last);

    let timeout = Duration::from_secs(5);
    let (_, high) = admin.watermarks(&topic, 1, timeout).unwrap()[0];
    assert!(
        high > last as i64,
        "the watermark query answered {high}, short of the committed record at {last}: \
         the last stable offset, not the log's end"
    );
    // A consumer that committed up to the open transaction is behind.
    let lag = admin
        .readable_between(&topic, 0, open_at as i64, high, Duration::from_secs(2))
        .unwrap();
    let early = admin.read_all(&topic, 1, Duration::from_secs(2));
    let late = admin.read_all(&topic, 1, READ_TO_END);
    let _ = admin.delete_topics(&[topic]).await;

    if let Ok((records, _)) = &early {
        let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
        assert!(
            !keys.contains(&"a2"),
            "the read-back got past the open transaction at once: the crashed \
             producer's transaction was not left open, so the test proves nothing"
        );
        panic!("the read-back returned part of the log while a transaction held it: {keys:?}");
    }
    assert!(lag, "the drain saw no lag behind the open transaction");
    let (records, gaps) = late.expect("the log read to its end once the broker aborted");
    let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["a0", "a1", "a2", "a3"]);
    assert!(
        gaps[&0].contains(&open_at),
        "the aborted record at {open_at} is a gap: {gaps:?}"
    );
}
