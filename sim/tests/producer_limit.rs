//! The simulated producer checks a record against the broker's maximum
//! message size itself, before sending, as Kafka's clients do (librdkafka's
//! `MSG_SIZE_TOO_LARGE`, the Java producer's `RecordTooLargeException`): an
//! oversize record fails at once with `MessageTooLarge`, without a frame on
//! the network, even while the broker is unreachable. A record at the limit
//! still goes to the broker.

use pitfall_harness::history::History;
use pitfall_harness::seed;
use pitfall_harness::system::BROKER;
use pitfall_ports::{Broker, ProduceError, ProducerConfig, ProducerRecord, MAX_MESSAGE_BYTES};
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

#[test]
fn an_oversize_record_fails_in_the_producer_without_reaching_the_broker() {
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
                max: MAX_MESSAGE_BYTES
            })
        );
        assert_eq!(wire::frames_sent(), frames, "nothing was sent");
        assert_eq!(started.elapsed(), Duration::ZERO, "it failed at once");
        Ok(())
    });
    sim.run().unwrap();
}
