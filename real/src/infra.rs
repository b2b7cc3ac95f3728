//! What real mode hands a host: each logical DB (on Postgres or MariaDB)
//! through the proxy of the host's link to it, the Kafka-compatible broker through pitfall's broker
//! proxy (group consumers wrapped so a crash can land at an offset commit),
//! the object store with adapter-injected faults, real time with the seed's
//! randomness, and the in-process front doors.

use crate::dbserver::DbServer;
use crate::hosts::{CrashAtCommit, CrashAtTxnCommit, Front, RealEnv};
use crate::kafka::{ClientLog, KafkaBroker};
use crate::names::RunNames;
use crate::store::{RealStore, SharedStoreFaults};
use pitfall_harness::crash_points::{ActivePoints, Boundary, CrashRequest, Points};
use pitfall_harness::history::History;
use pitfall_harness::rpc::{RpcClient, RpcListener};
use pitfall_harness::seed;
use pitfall_harness::system::{Infra, Topology};
use pitfall_ports::{
    Broker, ChangeFeed, Consumer, ConsumerConfig, Database, Env, LogReader, ObjectStore, Producer,
    ProducerConfig, TxnProducer,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What every host of one seed shares.
pub struct RunCtx {
    pub seed: u64,
    pub names: Arc<RunNames>,
    pub history: History,
    pub start: Instant,
    pub topology: Arc<Topology>,
    /// The broker's address for clients: pitfall's broker proxy.
    pub bootstrap: String,
    /// The server holding the logical DBs.
    pub db: Arc<dyn DbServer>,
    /// Per (host, DB) link: the address of that link's proxy.
    pub links: BTreeMap<(String, String), SocketAddr>,
    pub store: (Arc<dyn object_store::ObjectStore>, object_store::path::Path),
    pub store_faults: SharedStoreFaults,
    pub front: Front,
    /// Where a consumer armed to crash at its next commit asks for it.
    pub crash_tx: mpsc::UnboundedSender<String>,
    /// The crash and fail points switched on now (the nemesis writes).
    pub points: ActivePoints,
    /// Where a host whose crash point fired asks to be crashed there.
    pub point_tx: mpsc::UnboundedSender<(String, Boundary)>,
    /// The settings of every Kafka client the run made.
    pub clients: ClientLog,
    /// Per host that consumes in a group: whether its next offset commit
    /// crashes it.
    pub armed: Mutex<BTreeMap<String, Arc<AtomicBool>>>,
    incarnations: Mutex<BTreeMap<String, u32>>,
}

impl RunCtx {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        seed: u64,
        names: Arc<RunNames>,
        history: History,
        start: Instant,
        topology: Arc<Topology>,
        bootstrap: String,
        db: Arc<dyn DbServer>,
        links: BTreeMap<(String, String), SocketAddr>,
        store: (Arc<dyn object_store::ObjectStore>, object_store::path::Path),
        crash_tx: mpsc::UnboundedSender<String>,
        point_tx: mpsc::UnboundedSender<(String, Boundary)>,
        clients: ClientLog,
    ) -> Self {
        let front = Front::new(seed::rng(seed, "doors"), history.clone());
        RunCtx {
            seed,
            names,
            history,
            start,
            topology,
            bootstrap,
            db,
            links,
            store,
            store_faults: SharedStoreFaults::default(),
            front,
            crash_tx,
            points: ActivePoints::default(),
            point_tx,
            clients,
            armed: Mutex::default(),
            incarnations: Mutex::default(),
        }
    }

    /// The next incarnation of `host`'s infrastructure.
    pub fn infra(self: &Arc<Self>, host: &str) -> RealInfra {
        let mut inc = self.incarnations.lock().unwrap();
        let n = inc.entry(host.to_string()).or_insert(0);
        let env = RealEnv::new(
            self.start,
            seed::rng(self.seed, &format!("host/{host}/{n}")),
            host,
            self.history.clone(),
        );
        *n += 1;
        RealInfra {
            ctx: self.clone(),
            host: host.to_string(),
            env: Arc::new(env),
        }
    }

    /// What `infra`'s host consults at every boundary: the run's active
    /// points, drawn from the host's seeded generator; a crash point that
    /// fires asks the supervisor to crash the host there.
    pub fn points(&self, infra: &RealInfra) -> Points {
        let (tx, host) = (self.point_tx.clone(), infra.host.clone());
        let crash: CrashRequest = Arc::new(move |boundary| {
            let _ = tx.send((host.clone(), boundary));
        });
        Points::new(&infra.host, self.points.clone(), infra.env.clone(), crash)
    }

    /// `host`'s crash-at-commit switch, if it consumes in a group.
    pub fn armed(&self, host: &str) -> Option<Arc<AtomicBool>> {
        self.armed.lock().unwrap().get(host).cloned()
    }

    /// The object store as `process` sees it, with the run's faults.
    pub fn object_store(&self, process: &str, faults: SharedStoreFaults) -> RealStore {
        RealStore::new(
            self.store.0.clone(),
            &self.store.1,
            &self.names.store_folder(),
            faults,
            self.history.clone(),
            process,
        )
    }
}

/// One incarnation of a host's infrastructure.
pub struct RealInfra {
    ctx: Arc<RunCtx>,
    host: String,
    env: Arc<dyn Env>,
}

impl RealInfra {
    /// The proxy of this host's link to `db`.
    fn link(&self, db: &str) -> SocketAddr {
        *self
            .ctx
            .links
            .get(&(self.host.clone(), db.to_string()))
            .unwrap_or_else(|| {
                panic!(
                    "host `{}` uses DB `{db}`, but the system's topology does not link them",
                    self.host
                )
            })
    }
}

impl Infra for RealInfra {
    fn host(&self) -> &str {
        &self.host
    }

    fn db(&self, name: &str) -> Arc<dyn Database> {
        self.ctx
            .db
            .database(&self.ctx.names, name, Some(self.link(name)))
    }

    fn feed(&self, name: &str) -> Arc<dyn ChangeFeed> {
        self.ctx.db.feed(
            &self.ctx.names,
            name,
            Some(self.link(name)),
            Some(self.ctx.history.clone()),
        )
    }

    fn broker(&self) -> Arc<dyn Broker> {
        Arc::new(HostBroker {
            inner: KafkaBroker::new(
                &self.ctx.bootstrap,
                self.ctx.names.clone(),
                &self.host,
                self.ctx.history.clone(),
            )
            .with_client_log(self.ctx.clients.clone()),
            ctx: self.ctx.clone(),
            host: self.host.clone(),
        })
    }

    fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(
            self.ctx
                .object_store(&self.host, self.ctx.store_faults.clone()),
        )
    }

    fn env(&self) -> Arc<dyn Env> {
        self.env.clone()
    }

    fn listen(&self) -> Box<dyn RpcListener> {
        self.ctx.front.open(&self.host)
    }

    fn rpc(&self) -> Arc<dyn RpcClient> {
        self.ctx.front.client(&self.host)
    }
}

/// The broker as one host sees it: its group consumers and transactional
/// producers crash it at an offset or transaction commit when the nemesis
/// arms them.
struct HostBroker {
    inner: KafkaBroker,
    ctx: Arc<RunCtx>,
    host: String,
}

impl HostBroker {
    /// The host's "crash at the next commit" flag.
    fn armed(&self) -> Arc<std::sync::atomic::AtomicBool> {
        let mut armed = self.ctx.armed.lock().unwrap();
        armed.entry(self.host.clone()).or_default().clone()
    }
}

impl Broker for HostBroker {
    fn producer(&self, config: &ProducerConfig) -> Arc<dyn Producer> {
        self.inner.producer(config)
    }

    fn consumer(&self, config: &ConsumerConfig) -> Box<dyn Consumer> {
        Box::new(CrashAtCommit::new(
            self.inner.consumer(config),
            self.armed(),
            &self.host,
            self.ctx.crash_tx.clone(),
        ))
    }

    fn reader(&self) -> Arc<dyn LogReader> {
        self.inner.reader()
    }

    fn txn_producer(
        &self,
        transactional_id: &str,
        config: &ProducerConfig,
        timeout_ms: u64,
    ) -> Box<dyn TxnProducer> {
        Box::new(CrashAtTxnCommit::new(
            self.inner
                .txn_producer(transactional_id, config, timeout_ms),
            self.armed(),
            &self.host,
            self.ctx.crash_tx.clone(),
        ))
    }
}
