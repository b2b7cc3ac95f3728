//! An offset commit that lands on the broker, and whose reply is lost on the
//! way back, is in the history. The real consumer records a commit from the
//! client's answer; a commit cut off after the broker applied it (a slow
//! broker, then a crash: `crud-cdc` seed 2 on Postgres) failed, was not
//! recorded, and the `converges` checker saw the group's last commit short
//! of its last record while the broker had moved on. Needs the local Kafka
//! (`scripts/services.sh start`; `scripts/test.sh` does it).

mod common;

use common::ProxiedKafka;
use pitfall_harness::history::{Event, History};
use pitfall_ports::{
    Broker, Consumer, ConsumerConfig, ProducerConfig, ProducerRecord, TopicPartitionOffset,
};
use pitfall_real::kafka::KafkaAdmin;
use std::time::Duration;

const TOPIC: &str = "lost-commit";
const GROUP: &str = "lost-commit-group";
const MEMBER: &str = "member-a";
/// How long the proxy holds every chunk, each way: a reply reaches the
/// client no sooner than this after its request landed.
const SLOW_MS: u64 = 1_500;
/// The longest the broker stays unreachable after the cut: past the
/// member's session timeout, so that librdkafka's retry of the commit fails.
const DOWN_MAX: Duration = Duration::from_secs(10);

fn config() -> ConsumerConfig {
    ConsumerConfig {
        group: GROUP.into(),
        topics: vec![TOPIC.into()],
        session_timeout_ms: 6_000,
        max_poll_records: 100,
        read_committed: false,
    }
}

/// The offsets `MEMBER` recorded as committed.
fn recorded_commits(history: &History) -> Vec<u64> {
    history
        .entries()
        .into_iter()
        .filter_map(|e| match e.event {
            Event::OffsetCommit {
                process, offset, ..
            } if process == MEMBER => Some(offset),
            _ => None,
        })
        .collect()
}

/// Poll until `member` has received at least `n` records; their offsets.
async fn receive(member: &mut Box<dyn Consumer>, n: usize) -> Vec<u64> {
    let mut got = Vec::new();
    for _ in 0..60 {
        if let Ok(records) = member.poll(Duration::from_millis(500)).await {
            got.extend(records.iter().map(|r| r.offset));
        }
        if got.len() >= n {
            break;
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_whose_reply_is_lost_is_recorded_if_it_landed() {
    let kafka = ProxiedKafka::start("lostcommit", &[]).await;
    let (proxy, names) = (&kafka.proxy, &kafka.names);
    // The broker itself, past the proxy (its inter-broker listener, which
    // advertises itself): what it holds while the proxy refuses every
    // connection.
    let internal = common::env("PITFALL_KAFKA_INTERNAL", "127.0.0.1:9094");
    let direct = KafkaAdmin::new(&internal).unwrap();
    let topic = names.topic(TOPIC);
    direct
        .create_topics(std::slice::from_ref(&topic), 1)
        .await
        .expect("creating the topic");
    let history = History::since_now();
    let broker = |process: &str| kafka.broker(process, &history);
    let producer = broker("producer").producer(&ProducerConfig::default());
    for i in 0..3 {
        let record = ProducerRecord {
            topic: TOPIC.into(),
            key: format!("k{i}"),
            value: vec![b'x'; 16].into(),
            headers: vec![],
        };
        producer.send(record).await.expect("sending a record");
    }
    let mut member = broker(MEMBER).consumer(&config());
    let got = receive(&mut member, 2).await;
    assert!(got.len() >= 2, "the member received {got:?}");
    let next = got[1] + 1;

    // The commit goes out through a slow proxy; once the broker holds it,
    // and before its reply can have come back, every connection is cut and
    // new ones are refused for a while.
    proxy.set(|f| f.latency_ms = Some((SLOW_MS, SLOW_MS)));
    let mut committing = tokio::spawn(async move {
        let offsets = [TopicPartitionOffset {
            topic: TOPIC.into(),
            partition: 0,
            offset: next,
        }];
        let result = member.commit(&offsets).await;
        (member, result)
    });
    let group = names.group(GROUP);
    let mut landed_before_cut = false;
    for _ in 0..100 {
        let committed = direct.committed(&group, &topic, 1, Duration::from_secs(1));
        if matches!(committed.as_deref(), Ok([Some(o)]) if *o == next as i64) {
            proxy.set(|f| f.refuse = true);
            proxy.reset_connections();
            landed_before_cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The broker stays away until the commit gives up (librdkafka retries
    // it on a new connection, which would get a reply), or for at most
    // `DOWN_MAX`.
    let early = tokio::time::timeout(DOWN_MAX, &mut committing).await;
    proxy.heal();
    let (mut member, result) = match early {
        Ok(done) => done.unwrap(),
        Err(_) => tokio::time::timeout(Duration::from_secs(90), committing)
            .await
            .expect("the commit returns")
            .unwrap(),
    };
    eprintln!("the commit returned {result:?}");
    // A commit left unresolved is looked up again as the member goes on.
    for _ in 0..10 {
        let _ = member.poll(Duration::from_millis(500)).await;
        if recorded_commits(&history).contains(&next) {
            break;
        }
    }
    drop(member);
    let recorded = recorded_commits(&history);
    let _ = direct.delete_topics(&[topic]).await;
    assert!(
        landed_before_cut,
        "the commit did not land on the broker before the cut; the test proves nothing"
    );
    assert!(
        recorded.contains(&next),
        "the broker holds the member's commit of {next}, but the history records {recorded:?}"
    );
}
