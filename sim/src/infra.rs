//! What the simulation hands a host: the simulated adapters, reaching the
//! simulated servers over turmoil TCP, and a seeded environment of its own
//! for this incarnation.

use crate::adapters::broker::SimBroker;
use crate::adapters::db::SimDb;
use crate::adapters::env::SimEnv;
use crate::adapters::rpc::{Door, SimListener, SimRpc};
use crate::adapters::store::SimStore;
use pitfall_harness::history::History;
use pitfall_harness::rpc::{RpcClient, RpcListener};
use pitfall_harness::seed;
use pitfall_harness::system::{Infra, Topology, BROKER, STORE};
use pitfall_ports::{Broker, ChangeFeed, Database, Env, ObjectStore};
use std::sync::Arc;

/// One incarnation of a host's infrastructure.
pub struct SimInfra {
    host: String,
    history: History,
    env: Arc<dyn Env>,
    topology: Arc<Topology>,
    door: Door,
}

impl SimInfra {
    /// Incarnation `n` of `host` draws from its own sub-seed, so a restarted
    /// service does not replay its predecessor's random choices.
    pub fn new(host: &str, n: u32, seed: u64, door: Door, topology: Arc<Topology>) -> Self {
        let history = door.history.clone();
        SimInfra {
            host: host.to_string(),
            history: history.clone(),
            env: Arc::new(SimEnv::new(
                seed::rng(seed, &format!("host/{host}/{n}")),
                host,
                history.clone(),
            )),
            topology,
            door,
        }
    }

    fn check_link(&self, db: &str) {
        assert!(
            self.topology.linked(&self.host, db),
            "host `{}` uses DB `{db}`, but the system's topology does not link them",
            self.host
        );
    }
}

impl Infra for SimInfra {
    fn host(&self) -> &str {
        &self.host
    }

    fn db(&self, name: &str) -> Arc<dyn Database> {
        self.check_link(name);
        Arc::new(SimDb::new(name))
    }

    fn feed(&self, name: &str) -> Arc<dyn ChangeFeed> {
        self.check_link(name);
        Arc::new(SimDb::new(name))
    }

    fn broker(&self) -> Arc<dyn Broker> {
        Arc::new(SimBroker::new(BROKER, &self.host, self.history.clone()))
    }

    fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(SimStore::new(STORE))
    }

    fn env(&self) -> Arc<dyn Env> {
        self.env.clone()
    }

    fn listen(&self) -> Box<dyn RpcListener> {
        Box::new(SimListener::open(self.door.clone()))
    }

    fn rpc(&self) -> Arc<dyn RpcClient> {
        Arc::new(SimRpc)
    }
}
