//! The contract suite against the real adapters: the DB cases on Postgres
//! (a logical replication slot) and on MariaDB (the binlog), each in a
//! database of its own; the broker cases on rdkafka through the broker
//! fault proxy. Needs the local services (`scripts/services.sh start`;
//! `scripts/test.sh` does it).

mod common;

use async_trait::async_trait;
use common::{env, ProxiedKafka};
use pitfall_harness::contract::{self, Case, Fixture, DB, SLOT, TABLE, TOPICS};
use pitfall_harness::history::History;
use pitfall_harness::system::DbSpec;
use pitfall_ports::{Broker, ChangeFeed, Database};
use pitfall_real::dbserver::{self, DbServer};
use pitfall_real::kafka::{KafkaAdmin, KafkaBroker};
use pitfall_real::names::RunNames;
use pitfall_real::proxy::FaultProxy;
use std::sync::Arc;
use std::time::Duration;

/// The DB server (for the DB cases) or the broker proxy (for the broker
/// cases) one test runs against.
struct RealFixture {
    names: Arc<RunNames>,
    server: Option<Arc<dyn DbServer>>,
    proxy: Option<FaultProxy>,
    history: History,
}

impl RealFixture {
    fn server(&self) -> &Arc<dyn DbServer> {
        self.server
            .as_ref()
            .expect("a DB case runs with a DB server")
    }

    fn proxy(&self) -> &FaultProxy {
        self.proxy
            .as_ref()
            .expect("a broker case runs with the proxy")
    }
}

#[async_trait]
impl Fixture for RealFixture {
    fn db(&self) -> Arc<dyn Database> {
        self.server().database(&self.names, DB, None)
    }

    fn feed(&self) -> Arc<dyn ChangeFeed> {
        self.server().feed(&self.names, DB, None, None)
    }

    fn broker(&self) -> Arc<dyn Broker> {
        Arc::new(KafkaBroker::new(
            &self.proxy().addr().to_string(),
            self.names.clone(),
            "tester",
            self.history.clone(),
        ))
    }

    async fn lose_next_reply(&self) {
        self.proxy().set(|f| f.lose_next_response = true);
    }

    async fn slow_broker(&self, delay_ms: Option<u64>) {
        self.proxy()
            .set(|f| f.latency_ms = delay_ms.map(|d| (d, d)));
    }

    async fn broker_down(&self, down: bool) {
        self.proxy().set(|f| f.refuse = down);
        if down {
            self.proxy().reset_connections();
        }
    }
}

/// Run `cases`; the failures, each with its case's name.
async fn run(fixture: &RealFixture, cases: Vec<(&'static str, Case)>) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, case) in cases {
        match tokio::time::timeout(Duration::from_secs(90), case(fixture)).await {
            Ok(Ok(())) => eprintln!("contract {name}: ok"),
            Ok(Err(e)) => failures.push(format!("{name}: {e}")),
            Err(_) => failures.push(format!("{name}: timed out")),
        }
    }
    failures
}

/// The DB cases against the server at `url`, in a database of their own
/// that is dropped afterwards.
async fn db_contract(url: &str, tag: &str) {
    let server = dbserver::connect(url).await.unwrap_or_else(|(service, e)| {
        panic!("{service} at {url} (run scripts/services.sh start): {e}")
    });
    let names = Arc::new(RunNames::new(
        &format!("contract_{tag}_{}", std::process::id()),
        &[DB.to_string()],
    ));
    let spec = DbSpec {
        name: DB.to_string(),
        tables: vec![TABLE.to_string()],
        rows: Vec::new(),
        slots: vec![SLOT.to_string()],
    };
    let created = server.create(&names, std::slice::from_ref(&spec)).await;
    let fixture = RealFixture {
        names: names.clone(),
        server: Some(server.clone()),
        proxy: None,
        history: History::since_now(),
    };
    let failures = match &created {
        Ok(()) => run(&fixture, contract::db_cases()).await,
        Err(e) => vec![format!("creating the contract database: {e}")],
    };
    // Leave nothing behind, whatever happened.
    let dropped = server.drop_all(&names, &[spec]).await;
    assert!(
        failures.is_empty(),
        "{} contract failures:\n{}",
        server.describe(),
        failures.join("\n")
    );
    dropped.expect("dropping the contract database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_keeps_the_db_contract() {
    let url = env(
        "PITFALL_DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    );
    db_contract(&url, "pg").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_keeps_the_db_contract() {
    let url = env("PITFALL_MYSQL_URL", "mysql://root@127.0.0.1:3306/mysql");
    db_contract(&url, "my").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_real_broker_keeps_the_contract() {
    let ProxiedKafka {
        proxy,
        bootstrap,
        names,
    } = ProxiedKafka::start("contract", &[DB.to_string()]).await;
    let admin = KafkaAdmin::new(&bootstrap).unwrap();
    let topics: Vec<String> = TOPICS.iter().map(|t| names.topic(t)).collect();
    let fixture = RealFixture {
        names: names.clone(),
        server: None,
        proxy: Some(proxy),
        history: History::since_now(),
    };
    let failures = match admin.create_topics(&topics, 1).await {
        Ok(()) => run(&fixture, contract::broker_cases()).await,
        Err(e) => vec![format!("creating the contract topics: {e}")],
    };
    let deleted = admin.delete_topics(&topics).await;
    assert!(
        failures.is_empty(),
        "contract failures:\n{}",
        failures.join("\n")
    );
    deleted.expect("deleting the topics");
}
