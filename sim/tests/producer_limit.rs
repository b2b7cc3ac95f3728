//! The simulated producer checks a record against the broker's maximum
//! message size itself, before sending, as Kafka's clients do (librdkafka's
//! `MSG_SIZE_TOO_LARGE`, the Java producer's `RecordTooLargeException`): an
//! oversize record fails at once with `MessageTooLarge`, without a frame on
//! the network, even while the broker is unreachable. A record at the limit
//! still goes to the broker. A compressing producer judges the compressed
//! record, and gives up compressing one as soon as its frame passes the
//! limit.

use pitfall_harness::history::History;
use pitfall_harness::seed;
use pitfall_harness::system::BROKER;
use pitfall_ports::codec::Codec;
use pitfall_ports::{
    Blob, Broker, ProduceError, ProducerConfig, ProducerRecord, MAX_MESSAGE_BYTES,
};
use pitfall_sim::adapters::broker::SimBroker;
use pitfall_sim::servers::broker::{BrokerServer, BrokerState};
use pitfall_sim::servers::ServerFaults;
use pitfall_sim::wire;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const TOPIC: &str = "invoices";
const KEY: &str = "k";

fn record(value_bytes: usize) -> ProducerRecord {
    ProducerRecord {
        topic: TOPIC.into(),
        key: KEY.into(),
        value: vec![b'x'; value_bytes].into(),
        headers: vec![],
    }
}

/// A simulation with a broker serving [`TOPIC`], and the history it records.
fn broker_sim() -> (turmoil::Sim<'static>, History) {
    let history = History::new();
    let mut sim = turmoil::Builder::new()
        .rng_seed(5)
        .simulation_duration(Duration::from_secs(60))
        .build();
    let mut state = BrokerState::default();
    state.create_topic(TOPIC, 1);
    let broker = BrokerServer {
        state: Arc::new(Mutex::new(state)),
        faults: ServerFaults::shared(seed::rng(5, "broker")),
        history: history.clone(),
        changed: Default::default(),
        deadlines: Default::default(),
    };
    sim.host(BROKER, move || broker.clone().serve());
    (sim, history)
}

#[test]
fn an_oversize_record_fails_in_the_producer_without_reaching_the_broker() {
    let (mut sim, history) = broker_sim();
    let h = history.clone();
    sim.client("producer", async move {
        let producer = SimBroker::new(BROKER, "producer", h).producer(&ProducerConfig::default());
        let at_limit = MAX_MESSAGE_BYTES - KEY.len();
        producer
            .send(record(at_limit))
            .await
            .map_err(|e| e.to_string())?;

        turmoil::partition("producer", BROKER);
        let (frames, started) = (wire::frames_sent(), Instant::now());
        let result = producer.send(record(at_limit + 1)).await;
        assert_eq!(
            result,
            Err(ProduceError::MessageTooLarge {
                size: MAX_MESSAGE_BYTES + 1,
                max: MAX_MESSAGE_BYTES,
                at_least: false,
            })
        );
        assert_eq!(wire::frames_sent(), frames, "nothing was sent");
        assert_eq!(started.elapsed(), Duration::ZERO, "it failed at once");
        Ok(())
    });
    sim.run().unwrap();
}

/// A compressing producer sends a large record whose frame fits, and
/// rejects one whose frame does not at once, with the lower bound it had
/// written when it stopped, long before the whole record's frame.
#[test]
fn a_compressing_producer_stops_at_the_limit() {
    let (mut sim, history) = broker_sim();
    sim.client("producer", async move {
        let config = ProducerConfig {
            compression: Some(Codec::Lz4),
            ..ProducerConfig::default()
        };
        let producer = SimBroker::new(BROKER, "producer", history).producer(&config);
        let big = |bytes| ProducerRecord {
            value: Blob::generated(9, bytes),
            ..record(0)
        };
        producer
            .send(big(2 * MAX_MESSAGE_BYTES))
            .await
            .map_err(|e| e.to_string())?;
        let huge = big(20 * MAX_MESSAGE_BYTES);
        let whole = Codec::Lz4.compress_blob(&huge.value).len();
        let frames = wire::frames_sent();
        match producer.send(huge).await {
            Err(ProduceError::MessageTooLarge {
                size,
                max: MAX_MESSAGE_BYTES,
                at_least: true,
            }) => assert!(
                size > MAX_MESSAGE_BYTES && size < whole / 2,
                "stopped at {size} of a {whole}-byte frame"
            ),
            other => panic!("not rejected with a lower bound: {other:?}"),
        }
        assert_eq!(wire::frames_sent(), frames, "nothing was sent");
        Ok(())
    });
    sim.run().unwrap();
}
