//! One real-mode seed's resources, from the system's topology: tables,
//! replication slots (the history's own first), seed rows, topics and a
//! fault proxy per host→DB link; then the facts read back from the
//! authoritative sources after the drain; then everything removed.

use crate::names::RunNames;
use crate::postgres::{self, DecodedChange};
use crate::proxy::FaultProxy;
use crate::runner::RealWorld;
use crate::store::{RealStore, SharedStoreFaults};
use pitfall_harness::history::{value_repr, Event, History};
use pitfall_harness::scenario::Scenario;
use pitfall_harness::seed;
use pitfall_ports::{Change, ObjectStore};
use sqlx::AssertSqlSafe;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The slot the history reads every commit from.
const HISTORY_SLOT: &str = "history";

pub struct Run<'w> {
    pub world: &'w RealWorld,
    pub scenario: &'w Scenario,
    pub names: Arc<RunNames>,
    pub history: History,
    /// Per (host, DB) link: the link's proxy.
    pub proxies: BTreeMap<(String, String), FaultProxy>,
}

impl<'w> Run<'w> {
    pub fn new(
        world: &'w RealWorld,
        scenario: &'w Scenario,
        names: Arc<RunNames>,
        history: History,
    ) -> Self {
        Run {
            world,
            scenario,
            names,
            history,
            proxies: BTreeMap::new(),
        }
    }

    /// The run's object-store folder without faults, for the runner's own use.
    pub fn plain_store(&self, process: &str) -> RealStore {
        RealStore::new(
            self.world.store.0.clone(),
            &self.world.store.1,
            &self.names.store_folder(),
            SharedStoreFaults::default(),
            History::new(),
            process,
        )
    }

    fn topics(&self) -> Vec<String> {
        self.scenario
            .topology
            .topics
            .iter()
            .map(|t| self.names.topic(t))
            .collect()
    }

    /// The run's replication slots, the history's own first.
    fn slots(&self) -> Vec<String> {
        let mut slots = vec![HISTORY_SLOT.to_string()];
        for db in &self.scenario.topology.dbs {
            slots.extend(db.slots.iter().cloned());
        }
        slots
    }

    async fn sql(&self, sql: String) -> Result<(), String> {
        sqlx::query(AssertSqlSafe(sql.clone()))
            .execute(&self.world.pg)
            .await
            .map(drop)
            .map_err(|e| format!("{sql}: {e}"))
    }

    /// Tables, slots, seed rows, topics and the link proxies.
    pub async fn setup(&mut self) -> Result<(), String> {
        let pg = &self.world.pg;
        let topology = &self.scenario.topology;
        for db in &topology.dbs {
            postgres::create_tables(pg, &self.names, &db.name, &db.tables)
                .await
                .map_err(|e| e.to_string())?;
        }
        // The history's own slot sees every commit from here on, setup included.
        for slot in self.slots() {
            self.sql(format!(
                "SELECT pg_create_logical_replication_slot('{}', 'test_decoding')",
                self.names.slot(&slot)
            ))
            .await?;
        }
        self.seed_rows().await?;
        self.world
            .admin
            .create_topics(&self.topics(), self.scenario.run.partitions)
            .await
            .map_err(|e| format!("creating topics: {e}"))?;
        let pg_addr = format!(
            "{}:{}",
            self.world.pg_options.get_host(),
            self.world.pg_options.get_port()
        );
        for (host, db) in topology.links.iter().filter(|(_, b)| topology.is_db(b)) {
            let rng = seed::rng(0, &format!("proxy/{host}/{db}"));
            let proxy = FaultProxy::start("127.0.0.1:0", &pg_addr, rng)
                .await
                .map_err(|e| format!("starting the DB proxy: {e}"))?;
            self.proxies.insert((host.clone(), db.clone()), proxy);
        }
        Ok(())
    }

    /// The rows the system's DBs start with, in one transaction.
    async fn seed_rows(&self) -> Result<(), String> {
        let mut tx = self.world.pg.begin().await.map_err(|e| e.to_string())?;
        for db in &self.scenario.topology.dbs {
            for row in &db.rows {
                let sql = format!(
                    "INSERT INTO {} (key, version, data) VALUES ($1, 1, $2)",
                    self.names.table(&db.name, &row.table)
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(&row.key)
                    .bind(&row.data)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        tx.commit().await.map_err(|e| e.to_string())
    }

    /// Facts from the authoritative sources: every commit from the history
    /// slot (with its commit time), every record in the broker's log.
    pub async fn collect(&self, start_epoch_ms: i64) -> Result<(), String> {
        self.collect_commits(start_epoch_ms).await?;
        let admin = &self.world.admin;
        for logical in &self.scenario.topology.topics {
            let topic = self.names.topic(logical);
            let parts = self.scenario.run.partitions;
            let (records, gaps) = tokio::task::block_in_place(|| {
                admin.read_all(&topic, parts, Duration::from_secs(20))
            })
            .map_err(|e| format!("reading {topic}: {e}"))?;
            for (partition, offsets) in gaps {
                self.history.record_at(
                    0,
                    Event::Gaps {
                        topic: logical.clone(),
                        partition,
                        offsets,
                    },
                );
            }
            for r in records {
                let t = r
                    .timestamp_ms
                    .map_or(0, |ms| (ms - start_epoch_ms).max(0) as u64);
                self.history.record_at(
                    t,
                    Event::Append {
                        topic: logical.clone(),
                        partition: r.partition,
                        offset: r.offset,
                        key: r.key,
                        headers: r.headers,
                        producer: "broker-log".into(),
                        value: value_repr(&r.value),
                        wire_bytes: None,
                    },
                );
            }
        }
        Ok(())
    }

    /// Every transaction of the run's DBs, one commit event per DB.
    async fn collect_commits(&self, start_epoch_ms: i64) -> Result<(), String> {
        let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
            r"SELECT lsn::text, data,
                     CASE WHEN data LIKE 'COMMIT%'
                          THEN (extract(epoch from substring(data from '\(at (.+)\)$')::timestamptz) * 1000)::bigint
                     END
              FROM pg_logical_slot_get_changes($1, NULL, NULL, 'include-timestamp', '1', 'skip-empty-xacts', '1')",
        )
        .bind(self.names.slot(HISTORY_SLOT))
        .fetch_all(&self.world.pg)
        .await
        .map_err(|e| format!("reading the history slot: {e}"))?;
        let mut changes: Vec<DecodedChange> = Vec::new();
        let mut last_t = 0u64;
        for (lsn, data, commit_ms) in rows {
            if data.starts_with("BEGIN") {
                changes.clear();
                continue;
            }
            if !data.starts_with("COMMIT") {
                changes.extend(postgres::parse_change(&data));
                continue;
            }
            let t = commit_ms
                .map_or(last_t, |ms| (ms - start_epoch_ms).max(0) as u64)
                .max(last_t);
            last_t = t;
            let lsn = postgres::parse_lsn(&lsn).unwrap_or_default();
            let mut by_db: BTreeMap<String, Vec<Change>> = BTreeMap::new();
            for c in changes.drain(..) {
                let Some((db, table)) = self.names.logical_table(&c.table) else {
                    continue;
                };
                by_db.entry(db).or_default().push(Change {
                    lsn,
                    table,
                    key: c.key,
                    op: c.op,
                    version: c.version,
                    data: c.data,
                });
            }
            for (db, changes) in by_db {
                self.history.record_at(
                    t,
                    Event::DbCommit {
                        db,
                        process: "postgres".into(),
                        lsn,
                        changes,
                    },
                );
            }
        }
        Ok(())
    }

    /// Remove everything the run created: proxies, slots, tables, topics,
    /// objects. Keeps going after a failure and reports the first.
    pub async fn cleanup(&mut self) -> Result<(), String> {
        self.proxies.clear();
        let mut first_error: Option<String> = None;
        let mut note = |r: Result<(), String>| {
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        };
        for slot in self.slots() {
            let name = self.names.slot(&slot);
            note(
                self.sql(format!(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{name}'"
                ))
                .await,
            );
        }
        for db in &self.scenario.topology.dbs {
            for table in &db.tables {
                let table = self.names.table(&db.name, table);
                note(self.sql(format!("DROP TABLE IF EXISTS {table}")).await);
            }
        }
        note(
            self.world
                .admin
                .delete_topics(&self.topics())
                .await
                .map_err(|e| format!("deleting topics: {e}")),
        );
        let store = self.plain_store("cleanup");
        match store.list("").await {
            Ok(keys) => {
                for key in keys {
                    note(store.delete(&key).await.map_err(|e| e.to_string()));
                }
            }
            Err(e) => note(Err(e.to_string())),
        }
        match first_error {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}
