//! A record the real consumer received before a rebalance is recorded
//! before the assignment that follows it. The consumer gathers a batch by
//! receiving until records stop arriving, and a receive can run the
//! rebalance callback; records received before it were once recorded only
//! after the batch, so after the new `assigned` event, and the queue checker
//! saw a member go back within one assignment (a `nonmonotonic-poll`, on
//! MariaDB's third-party-naive seed 2). Needs the local Kafka
//! (`scripts/services.sh start`; `scripts/test.sh` does it).

mod common;

use common::ProxiedKafka;
use pitfall_harness::history::{Event, History};
use pitfall_ports::{Broker, ConsumerConfig, ProducerConfig, ProducerRecord};
use pitfall_real::kafka::KafkaAdmin;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TOPIC: &str = "batch";
const MEMBER: &str = "member-a";

fn config() -> ConsumerConfig {
    ConsumerConfig {
        group: "batch-group".into(),
        topics: vec![TOPIC.into()],
        session_timeout_ms: 6_000,
        max_poll_records: 5_000,
        read_committed: false,
    }
}

/// Within each assignment, `MEMBER`'s consumed offsets of a partition only
/// go up: returns where one went back, and after how many assignments the
/// member consumed (the first, and each rebalance it kept a partition
/// through).
fn walk(history: &History) -> (Vec<String>, usize) {
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    let mut just_assigned = false;
    let (mut back, mut across) = (Vec::new(), 0);
    for entry in history.entries() {
        match entry.event {
            Event::Assigned { process, .. } if process == MEMBER => {
                last.clear();
                just_assigned = true;
            }
            Event::Consume {
                process,
                partition,
                offset,
                ..
            } if process == MEMBER => {
                if let Some(&before) = last.get(&partition) {
                    if offset <= before {
                        back.push(format!("{partition}@{offset} after {partition}@{before}"));
                    }
                }
                if just_assigned && last.is_empty() {
                    across += 1;
                }
                just_assigned = false;
                last.insert(partition, offset);
            }
            _ => {}
        }
    }
    (back, across)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_received_before_a_rebalance_are_recorded_before_it() {
    let kafka = ProxiedKafka::start("batch", &[]).await;
    let admin = KafkaAdmin::new(&kafka.bootstrap).unwrap();
    let topic = kafka.names.topic(TOPIC);
    admin
        .create_topics(std::slice::from_ref(&topic), 2)
        .await
        .expect("creating the topic");
    let history = History::since_now();
    let broker = |process: &str| kafka.broker(process, &history);
    // Records arrive all the time, so the member's batches run on and a
    // rebalance lands inside one.
    let producing = Arc::new(AtomicBool::new(true));
    let mut producers = Vec::new();
    for p in 0..8 {
        let producer = broker("producer").producer(&ProducerConfig::default());
        let producing = producing.clone();
        producers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while producing.load(Ordering::SeqCst) {
                let record = ProducerRecord {
                    topic: TOPIC.into(),
                    key: format!("k{p}-{i}"),
                    value: vec![b'x'; 16].into(),
                    headers: vec![],
                };
                let _ = producer.send(record).await;
                i += 1;
            }
        }));
    }
    // Each round: two rebalances, about one in three of which lands inside
    // a batch.
    let mut member = broker(MEMBER).consumer(&config());
    for _round in 0..4 {
        // A second member joins for a while, then leaves: two rebalances.
        let other_broker = broker("member-b");
        let other = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let mut other = other_broker.consumer(&config());
            for _ in 0..10 {
                let _ = other.poll(Duration::from_millis(200)).await;
            }
        });
        let until = tokio::time::Instant::now() + Duration::from_secs(6);
        while tokio::time::Instant::now() < until {
            let _ = member.poll(Duration::from_millis(500)).await;
        }
        other.await.unwrap();
    }
    let across = walk(&history).1;
    producing.store(false, Ordering::SeqCst);
    for p in producers {
        let _ = p.await;
    }
    drop(member);
    let (back, _) = walk(&history);
    let _ = admin.delete_topics(&[topic]).await;
    assert!(
        across >= 3,
        "the member consumed after {across} assignment(s), not through two rebalances; the test proves nothing"
    );
    assert!(
        back.is_empty(),
        "{MEMBER} went back within one assignment: {}",
        back.join(", ")
    );
}
