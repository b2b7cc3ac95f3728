//! The `System` API: how a system under test is described to the harness.
//!
//! A [`System`] is registered with the command line once. For each scenario
//! it reads its own sections of the scenario file and returns a [`Config`]:
//! the hosts and what each needs ([`Topology`]), how to start each host from
//! the infrastructure a mode hands it ([`Config::spawn`] with an [`Infra`]),
//! the clients and their workload ([`Config::clients`]), and, through its
//! [`Topology::probes`], what is still pending while the system drains. Its
//! [`System::invariants`] are checked beside the generic ones (queue
//! anomalies, context propagation, convergence).
//!
//! Nothing here knows which mode runs the system: the simulation hands a
//! host adapters over turmoil's network, real mode hands it Postgres, Kafka
//! and an object store, and the system's code is the same in both.

use crate::checkers::{Anomaly, Invariant};
use crate::history::{Entry, History};
use crate::rpc::{RpcClient, RpcListener};
use crate::scenario::{InputError, RunParams, ScenarioText};
use pitfall_ports::{Broker, ChangeFeed, Database, Env, ObjectStore};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The running software of one host incarnation. Dropping it is a crash:
/// whatever it held in memory is gone.
pub type HostFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The broker's host name in every world.
pub const BROKER: &str = "broker";
/// The object store's host name in every world.
pub const STORE: &str = "objstore";

/// A system under test.
pub trait System: Send + Sync + 'static {
    /// Short name; scenarios select the system with `system = "<name>"`.
    fn name(&self) -> &'static str;
    /// One line on what the system is.
    fn describe(&self) -> &'static str;
    /// The top-level keys of a scenario file that belong to this system
    /// (for example `variants`, `workload`); any other unknown key is an
    /// error.
    fn sections(&self) -> &'static [&'static str];
    /// Read the system's sections of one scenario file.
    fn configure(&self, scenario: &ScenarioText<'_>) -> Result<Arc<dyn Config>, InputError>;
    /// The system's own invariants; names must not clash with the generic
    /// ones ([`crate::checkers::GENERIC`]).
    fn invariants(&self) -> Vec<Invariant>;
    /// The queue anomalies a run with these variants may show (see
    /// [`crate::checkers::queue`]); none by default.
    fn queue_allowed(&self, _variants: &BTreeMap<String, String>) -> Vec<Anomaly> {
        Vec::new()
    }
    /// The variant switches a scenario may set, for `pitfall list`.
    fn components(&self) -> Vec<Component> {
        Vec::new()
    }
    /// Figures one seed's history yields for the report (sizes, ratios, …);
    /// none by default.
    fn figures(&self, _history: &[Entry]) -> Option<Value> {
        None
    }
    /// The figures of many seeds added up for a scenario's report.
    fn total_figures(&self, _seeds: &[&Value]) -> Option<Figures> {
        None
    }
    /// The system's end-to-end latency in one history, for the report's
    /// latency plot (for the reference system, a payment's commit to its
    /// reservation outcome). By default the report plots a record's append
    /// to its first consumption.
    fn latencies(&self, _history: &[Entry]) -> Option<Latencies> {
        None
    }
    /// Coverage events the system's own services mark through
    /// [`pitfall_ports::Env::mark`], besides the harness's
    /// ([`crate::coverage::catalog`]): name and what it means. A scenario
    /// may declare them in `sometimes`.
    fn coverage_events(&self) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }
}

/// End-to-end latencies of one history: what is measured, and per item the
/// simulated time it started and how long it took.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Latencies {
    /// What a point measures, as the plot's axis says it.
    pub label: String,
    /// (start, latency), in milliseconds, in start order.
    pub points_ms: Vec<(u64, u64)>,
}

impl fmt::Debug for dyn System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "System({})", self.name())
    }
}

/// A scenario's figures over its seeds: a JSON value the report keeps under
/// `key`, and the line the summary table prints.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    pub key: String,
    pub value: Value,
    pub line: String,
}

/// A variant switch, as `pitfall list` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    /// Which of the five pitfalls it is about, if any.
    pub pitfall: Option<u8>,
    pub title: &'static str,
    /// Where a scenario sets it, for example `variants.producer`.
    pub key: &'static str,
    /// Each variant's name and what it does.
    pub variants: Vec<(&'static str, &'static str)>,
    /// The invariants that catch its naive variants.
    pub checked_by: Vec<&'static str>,
}

/// A system configured by one scenario.
pub trait Config: Send + Sync + 'static {
    /// Component → variant, as the history's run header records it.
    fn variants(&self) -> BTreeMap<String, String>;
    /// The hosts, what they use, and what the drain waits for.
    fn topology(&self) -> Topology;
    /// Start one incarnation of `host` (a service of the topology) on the
    /// infrastructure it is handed. Called again after every crash.
    fn spawn(&self, host: &str, infra: &dyn Infra) -> HostFuture;
    /// The clients of one seed and their workload, drawn from the seed.
    fn clients(&self, seed: u64, run: &RunParams) -> Vec<Client>;
    /// The workload's sizes by name (`orders`, `shoppers`, …), which a plan
    /// file may pin and `shrink` lowers. None by default.
    fn workload(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
    /// Workload items a plan may pick a subset of, by kind, with how many
    /// the seed draws (`orders`: 40). None by default.
    fn items(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
    /// This configuration running only the listed items of each kind
    /// (indices into the seed's draw, which stay what they were), or why not.
    fn with_items(&self, items: &BTreeMap<String, Vec<u64>>) -> Result<Arc<dyn Config>, String> {
        match items.keys().next() {
            None => Err("no items given".into()),
            Some(k) => Err(format!("this system's workload has no items `{k}`")),
        }
    }
    /// This configuration with some workload sizes replaced, or why they
    /// cannot be.
    fn with_workload(&self, sizes: &BTreeMap<String, u64>) -> Result<Arc<dyn Config>, String> {
        match sizes.keys().next() {
            None => Err("no workload sizes given".into()),
            Some(k) => Err(format!("this system's workload has no size `{k}`")),
        }
    }
}

/// What a host is handed: the infrastructure, as ports. Every resource a
/// host uses must be one of its links in the [`Topology`].
pub trait Infra {
    /// The host's name.
    fn host(&self) -> &str;
    /// A connection to the database `name`.
    fn db(&self, name: &str) -> Arc<dyn Database>;
    /// The change feed (replication slots) of the database `name`.
    fn feed(&self, name: &str) -> Arc<dyn ChangeFeed>;
    /// A client of the broker.
    fn broker(&self) -> Arc<dyn Broker>;
    /// The object store.
    fn store(&self) -> Arc<dyn ObjectStore>;
    /// Time and this incarnation's seeded randomness.
    fn env(&self) -> Arc<dyn Env>;
    /// The host's RPC front door (one per host).
    fn listen(&self) -> Box<dyn RpcListener>;
    /// A client of other hosts' front doors.
    fn rpc(&self) -> Arc<dyn RpcClient>;
}

/// A client host's software: it gets an RPC client and the history to
/// record its operations in, and finishes when its workload is done.
pub struct Client {
    pub name: String,
    pub run: Box<dyn FnOnce(ClientCtx) -> HostFuture + Send>,
}

/// What a client is handed.
#[derive(Clone)]
pub struct ClientCtx {
    pub rpc: Arc<dyn RpcClient>,
    pub history: History,
}

/// The hosts of a configured system and what each needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Topology {
    pub dbs: Vec<DbSpec>,
    /// Topics, each with the run's partition count.
    pub topics: Vec<String>,
    /// Hosts that run service software (restartable, crashable).
    pub services: Vec<String>,
    /// Hosts that run clients (the workload).
    pub clients: Vec<String>,
    /// Which hosts talk to which, as (client side, server side): a DB name,
    /// [`BROKER`], [`STORE`] or another host's front door. What a partition
    /// can cut, and what real mode puts a DB proxy on.
    pub links: Vec<(String, String)>,
    /// What keeps the system from being drained.
    pub probes: Vec<Probe>,
    /// Named groups of hosts a scenario may crash (`crash-workers`, …),
    /// besides `crash` (any service) and `crash:<host>`.
    pub crash_groups: Vec<CrashGroup>,
}

impl Topology {
    pub fn db(&self, name: &str) -> Option<&DbSpec> {
        self.dbs.iter().find(|d| d.name == name)
    }

    pub fn is_db(&self, name: &str) -> bool {
        self.db(name).is_some()
    }

    /// Every host: the DBs, the broker, the object store, the services and
    /// the clients.
    pub fn all_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self.dbs.iter().map(|d| d.name.clone()).collect();
        hosts.extend([BROKER.to_string(), STORE.to_string()]);
        hosts.extend(self.services.iter().cloned());
        hosts.extend(self.clients.iter().cloned());
        hosts
    }

    /// The services other hosts call at their front door (the server side
    /// of a link): what the `api-*` faults target.
    pub fn front_doors(&self) -> Vec<String> {
        self.services
            .iter()
            .filter(|s| self.links.iter().any(|(_, b)| b == *s))
            .cloned()
            .collect()
    }

    /// Whether `host` may use `resource` (a DB, the broker, the store or
    /// another host).
    pub fn linked(&self, host: &str, resource: &str) -> bool {
        self.links.iter().any(|(a, b)| a == host && b == resource)
    }

    /// Check that the topology is well-formed: unique host names, links
    /// and probes that name known hosts. The message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let hosts = self.all_hosts();
        let mut seen = std::collections::BTreeSet::new();
        for h in &hosts {
            if !seen.insert(h) {
                return Err(format!("host `{h}` is declared twice"));
            }
        }
        for (a, b) in &self.links {
            for end in [a, b] {
                if !hosts.contains(end) {
                    return Err(format!("link {a}|{b} names an unknown host `{end}`"));
                }
            }
        }
        for g in &self.crash_groups {
            if !g.name.starts_with("crash-") {
                return Err(format!(
                    "crash group `{}`: its name must start with `crash-`",
                    g.name
                ));
            }
            if let Some(h) = g.hosts.iter().find(|h| !self.services.contains(h)) {
                return Err(format!(
                    "crash group `{}` names `{h}`, not a service",
                    g.name
                ));
            }
        }
        for p in &self.probes {
            if let Probe::Feed { db, .. } = p {
                if !self.is_db(db) {
                    return Err(format!("a feed probe names an unknown DB `{db}`"));
                }
            }
        }
        Ok(())
    }
}

/// A database server: its tables, the rows it starts with, and the
/// replication slots its change feed serves.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DbSpec {
    pub name: String,
    pub tables: Vec<String>,
    pub rows: Vec<SeedRow>,
    pub slots: Vec<String>,
}

/// A row a database holds before the run starts.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedRow {
    pub table: String,
    pub key: String,
    pub data: Value,
}

/// A named group of service hosts a scenario may crash.
#[derive(Clone, Debug, PartialEq)]
pub struct CrashGroup {
    /// The fault's name in scenario files, for example `crash-workers`;
    /// it must start with `crash-`.
    pub name: String,
    pub describe: String,
    pub hosts: Vec<String>,
}

/// Something that must be done before the system counts as drained.
#[derive(Clone, Debug, PartialEq)]
pub enum Probe {
    /// The consumer group has committed every partition of the topic up to
    /// its end. `label` names the consumer in the pending message.
    Lag {
        label: String,
        group: String,
        topic: String,
    },
    /// The slot has confirmed every change of these tables of the DB.
    Feed {
        db: String,
        slot: String,
        tables: Vec<String>,
    },
    /// The object store holds nothing under this prefix.
    Empty { prefix: String, what: String },
}

/// The systems the command line knows.
#[derive(Clone)]
pub struct Registry {
    systems: Vec<Arc<dyn System>>,
}

impl Registry {
    /// The first system is the default for scenario files that name none.
    /// Names must be unique, and so must each system's invariant names.
    pub fn new(systems: Vec<Arc<dyn System>>) -> Result<Registry, String> {
        if systems.is_empty() {
            return Err("no system registered".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for s in &systems {
            if !names.insert(s.name()) {
                return Err(format!("system `{}` is registered twice", s.name()));
            }
            let mut invariants = std::collections::BTreeSet::new();
            for i in crate::checkers::all(s) {
                if !invariants.insert(i.name) {
                    return Err(format!(
                        "system `{}` has two invariants named `{}`",
                        s.name(),
                        i.name
                    ));
                }
            }
        }
        Ok(Registry { systems })
    }

    pub fn systems(&self) -> &[Arc<dyn System>] {
        &self.systems
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn System>> {
        self.systems.iter().find(|s| s.name() == name)
    }

    pub fn default_system(&self) -> &Arc<dyn System> {
        &self.systems[0]
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.systems.iter().map(|s| s.name()).collect()
    }
}
