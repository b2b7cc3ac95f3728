//! What the real-mode tests share: the local services' addresses (where
//! `scripts/services.sh` starts them, or from the environment) and Apache
//! Kafka behind pitfall's broker fault proxy, under a test run's names.

#![allow(dead_code)] // each test binary uses part of it
use pitfall_harness::history::History;
use pitfall_harness::seed;
use pitfall_real::kafka::KafkaBroker;
use pitfall_real::names::RunNames;
use pitfall_real::proxy::FaultProxy;
use std::sync::Arc;

pub fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// The broker as a test reaches it: through the fault proxy, which the
/// broker advertises, so every client connection goes through it.
pub struct ProxiedKafka {
    pub proxy: FaultProxy,
    /// The proxy's address: the bootstrap for the test's clients.
    pub bootstrap: String,
    pub names: Arc<RunNames>,
}

impl ProxiedKafka {
    /// The proxy in front of the local broker, and the names of a run
    /// tagged `tag` (its DBs `dbs`) that no other process shares.
    pub async fn start(tag: &str, dbs: &[String]) -> ProxiedKafka {
        let kafka = env("PITFALL_KAFKA", "127.0.0.1:9092");
        let bootstrap = env("PITFALL_KAFKA_PROXY", "127.0.0.1:19092");
        // The proxy first: if its port is taken, nothing has been created.
        let proxy = FaultProxy::start(&bootstrap, &kafka, seed::rng(0, tag))
            .await
            .expect("the broker proxy port is free (is a real-mode run going on?)");
        let names = Arc::new(RunNames::new(&format!("{tag}_{}", std::process::id()), dbs));
        ProxiedKafka {
            proxy,
            bootstrap,
            names,
        }
    }

    /// A broker client for `process`, recording into `history`.
    pub fn broker(&self, process: &str, history: &History) -> KafkaBroker {
        KafkaBroker::new(
            &self.bootstrap,
            self.names.clone(),
            process,
            history.clone(),
        )
    }
}
