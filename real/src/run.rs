//! One real-mode seed's resources, from the system's topology: a database
//! per logical DB with its tables, slots (the history's own first) and seed
//! rows (through [`crate::dbserver`]), topics and a fault proxy per host→DB
//! link; then the facts read back from the authoritative sources after the
//! drain; then everything removed.

use crate::names::RunNames;
use crate::proxy::FaultProxy;
use crate::runner::RealWorld;
use crate::store::{RealStore, SharedStoreFaults};
use pitfall_harness::history::{value_repr, Event, History};
use pitfall_harness::scenario::Scenario;
use pitfall_harness::seed;
use pitfall_ports::ObjectStore;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

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

    /// Databases, tables, slots, seed rows, topics and the link proxies.
    pub async fn setup(&mut self) -> Result<(), String> {
        let topology = &self.scenario.topology;
        let server = &self.world.db;
        server.create(&self.names, &topology.dbs).await?;
        self.world
            .admin
            .create_topics(&self.topics(), self.scenario.run.partitions)
            .await
            .map_err(|e| format!("creating topics: {e}"))?;
        let db_addr = server.addr();
        for (host, db) in topology.links.iter().filter(|(_, b)| topology.is_db(b)) {
            let rng = seed::rng(0, &format!("proxy/{host}/{db}"));
            let proxy = FaultProxy::start("127.0.0.1:0", &db_addr, rng)
                .await
                .map_err(|e| format!("starting the DB proxy: {e}"))?;
            self.proxies.insert((host.clone(), db.clone()), proxy);
        }
        Ok(())
    }

    /// Facts from the authoritative sources: every commit of the run's DBs
    /// (with its commit time), every record in the broker's log.
    pub async fn collect(&self, start_epoch_ms: i64) -> Result<(), String> {
        self.world
            .db
            .collect(
                &self.names,
                &self.scenario.topology.dbs,
                start_epoch_ms,
                &self.history,
            )
            .await?;
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
                        value: value_repr(&r.value.into()),
                        wire_bytes: None,
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
        note(
            self.world
                .db
                .drop_all(&self.names, &self.scenario.topology.dbs)
                .await,
        );
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
