//! The contract suite against the real adapters: rdkafka through the broker
//! fault proxy, sqlx on Postgres with a logical replication slot. Needs the
//! local services (`scripts/services.sh start`; `scripts/test.sh` does it).

use async_trait::async_trait;
use pitfall_harness::contract::{self, Fixture, DB, SLOT, TABLE, TOPICS};
use pitfall_harness::history::History;
use pitfall_harness::seed;
use pitfall_ports::{Broker, ChangeFeed, Database};
use pitfall_real::kafka::{KafkaAdmin, KafkaBroker};
use pitfall_real::names::RunNames;
use pitfall_real::postgres::{self, PgDb, PgFeed};
use pitfall_real::proxy::FaultProxy;
use sqlx::postgres::PgPool;
use sqlx::AssertSqlSafe;
use std::sync::Arc;
use std::time::Duration;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

struct RealFixture {
    names: Arc<RunNames>,
    pool: PgPool,
    proxy: FaultProxy,
    history: History,
}

#[async_trait]
impl Fixture for RealFixture {
    fn db(&self) -> Arc<dyn Database> {
        Arc::new(PgDb::new(
            self.pool.clone(),
            self.names.clone(),
            DB.to_string(),
        ))
    }

    fn feed(&self) -> Arc<dyn ChangeFeed> {
        Arc::new(PgFeed::new(
            self.pool.clone(),
            self.names.clone(),
            DB.to_string(),
        ))
    }

    fn broker(&self) -> Arc<dyn Broker> {
        Arc::new(KafkaBroker::new(
            &self.proxy.addr().to_string(),
            self.names.clone(),
            "tester",
            self.history.clone(),
        ))
    }

    async fn lose_next_reply(&self) {
        self.proxy.set(|f| f.lose_next_response = true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_real_adapters_keep_the_contract() {
    let kafka = env("PITFALL_KAFKA", "127.0.0.1:9092");
    let kafka_proxy = env("PITFALL_KAFKA_PROXY", "127.0.0.1:19092");
    let database = env(
        "PITFALL_DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    );

    // The proxy first: if its port is taken, nothing has been created yet.
    let proxy = FaultProxy::start(&kafka_proxy, &kafka, seed::rng(0, "contract"))
        .await
        .expect("the broker proxy port is free (is a real-mode run going on?)");
    let names = Arc::new(RunNames::new(
        &format!("contract_{}", std::process::id()),
        &[DB.to_string()],
    ));
    let pool = postgres::pool(&database, 8)
        .await
        .expect("Postgres is reachable (run scripts/services.sh start)");
    postgres::create_tables(&pool, &names, DB, &[TABLE])
        .await
        .unwrap();
    let slot = names.slot(SLOT);
    sqlx::query("SELECT pg_create_logical_replication_slot($1, 'test_decoding')")
        .bind(&slot)
        .execute(&pool)
        .await
        .expect("a logical slot (wal_level must be logical)");
    let admin = KafkaAdmin::new(&kafka_proxy).unwrap();
    let topics: Vec<String> = TOPICS.iter().map(|t| names.topic(t)).collect();
    let fixture = RealFixture {
        names: names.clone(),
        pool: pool.clone(),
        proxy,
        history: History::since_now(),
    };

    let mut failures = Vec::new();
    if let Err(e) = admin.create_topics(&topics, 1).await {
        failures.push(format!("creating the contract topics: {e}"));
    }
    let cases = if failures.is_empty() {
        contract::cases()
    } else {
        Vec::new()
    };
    for (name, case) in cases {
        match tokio::time::timeout(Duration::from_secs(90), case(&fixture)).await {
            Ok(Ok(())) => eprintln!("contract {name}: ok"),
            Ok(Err(e)) => failures.push(format!("{name}: {e}")),
            Err(_) => failures.push(format!("{name}: timed out")),
        }
    }

    // Leave nothing behind, whatever happened.
    let dropped = sqlx::query("SELECT pg_drop_replication_slot($1)")
        .bind(&slot)
        .execute(&pool)
        .await;
    let drop = format!("DROP TABLE {}", names.table(DB, TABLE));
    let table = sqlx::query(AssertSqlSafe(drop)).execute(&pool).await;
    let deleted = admin.delete_topics(&topics).await;
    dropped.expect("dropping the slot");
    table.expect("dropping the table");
    deleted.expect("deleting the topics");

    assert!(
        failures.is_empty(),
        "contract failures:\n{}",
        failures.join("\n")
    );
}
