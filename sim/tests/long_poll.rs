//! Long polls in the simulated servers: a consumer's fetch and a change
//! feed's poll wait on the server for data instead of asking again and
//! again, and answer as soon as a produce or a commit lands.

use pitfall_harness::history::History;
use pitfall_harness::seed;
use pitfall_harness::system::BROKER;
use pitfall_ports::{Broker, ChangeFeed, ConsumerConfig, Database, ProducerConfig, ProducerRecord};
use pitfall_sim::adapters::broker::SimBroker;
use pitfall_sim::adapters::db::SimDb;
use pitfall_sim::servers::broker::{BrokerServer, BrokerState};
use pitfall_sim::servers::db::{DbServer, DbState};
use pitfall_sim::servers::ServerFaults;
use pitfall_sim::wire;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const TOPIC: &str = "orders";
const DB: &str = "db";

fn world() -> (turmoil::Sim<'static>, History) {
    let history = History::new();
    let mut sim = turmoil::Builder::new()
        .rng_seed(3)
        .simulation_duration(Duration::from_secs(60))
        .build();
    let mut state = BrokerState::default();
    state.create_topic(TOPIC, 3);
    let broker = BrokerServer {
        state: Arc::new(Mutex::new(state)),
        faults: ServerFaults::shared(seed::rng(3, "broker")),
        history: history.clone(),
        changed: Default::default(),
        deadlines: Default::default(),
    };
    sim.host(BROKER, move || broker.clone().serve());
    let db = DbServer {
        name: DB.into(),
        state: Arc::new(Mutex::new(DbState::default())),
        faults: ServerFaults::shared(seed::rng(3, "db")),
        history: history.clone(),
        committed: Default::default(),
    };
    sim.host(DB, move || db.clone().serve());
    (sim, history)
}

#[test]
fn an_idle_consumer_waits_on_the_broker_and_wakes_on_a_produce() {
    let (mut sim, history) = world();
    let h = history.clone();
    sim.client("producer", async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let producer = SimBroker::new(BROKER, "producer", h).producer(&ProducerConfig::default());
        producer
            .send(ProducerRecord {
                topic: TOPIC.into(),
                key: "k".into(),
                value: b"v".to_vec().into(),
                headers: vec![],
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    });
    sim.client("consumer", async move {
        let mut consumer = SimBroker::new(BROKER, "consumer", history).consumer(&ConsumerConfig {
            group: "g".into(),
            topics: vec![TOPIC.into()],
            session_timeout_ms: 2_000,
            max_poll_records: 10,
            read_committed: false,
        });
        // Join, then wait with nothing to read.
        let joined = consumer.poll(Duration::from_millis(500)).await?;
        assert!(joined.is_empty());
        let frames_before = wire::frames_sent();
        let started = Instant::now();
        let records = consumer.poll(Duration::from_secs(10)).await?;
        let waited_ms = started.elapsed().as_millis();
        assert_eq!(records.len(), 1, "the produced record");
        // Produced about 2.5 s in (plus the producer's connect and the
        // network): the poll answers right after, not when its 10 s end.
        assert!(
            (2_000..3_200).contains(&waited_ms),
            "answered after {waited_ms} ms"
        );
        // One fetch and one heartbeat (a request and its reply each) per
        // 300 ms, not a round of fetches every 50 ms: about 2.5 s / 300 ms
        // × 4 frames, and those of the produce itself.
        let frames = wire::frames_sent() - frames_before;
        assert!(frames <= 50, "{frames} frames while waiting");
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn a_change_poll_waits_for_a_commit_and_no_longer() {
    let (mut sim, _) = world();
    sim.client("writer", async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let db = SimDb::new(DB);
        let mut tx = db.begin().await.map_err(|e| e.to_string())?;
        tx.insert("t", "k", json!(1))
            .await
            .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        Ok(())
    });
    sim.client("reader", async move {
        let feed = SimDb::new(DB);
        let wait = Duration::from_secs(5);
        let started = Instant::now();
        let changes = feed.poll_wait("s", 0, 10, wait).await?;
        let took_ms = started.elapsed().as_millis();
        assert_eq!(changes.len(), 1, "the committed insert");
        assert!(
            (900..1_500).contains(&took_ms),
            "answered after {took_ms} ms"
        );
        // Nothing more to read: the poll waits out its whole wait.
        let after = changes[0].lsn;
        let started = Instant::now();
        let none = feed.poll_wait("s", after, 10, wait).await?;
        let took_ms = started.elapsed().as_millis();
        assert!(none.is_empty());
        assert!(
            (5_000..5_500).contains(&took_ms),
            "gave up after {took_ms} ms"
        );
        Ok(())
    });
    sim.run().unwrap();
}
