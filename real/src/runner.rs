//! Runs one seed against real services: the same scenario, service code,
//! fault plan (drawn from the seed), history format and checkers as the
//! simulation. Services run as tokio tasks; a crash aborts a host's tasks and
//! a restart builds it again from durable state. Network faults go through
//! fault proxies. Seeds reproduce the fault plan and the workload, not the
//! timing.

use crate::hosts::{CrashAtCommit, Front, OrdersMsg, PayCall, RealEnv};
use crate::kafka::{self, KafkaAdmin, KafkaBroker, MAX_MESSAGE_BYTES};
use crate::names::RunNames;
use crate::postgres::{self, PgDb, PgFeed};
use crate::proxy::FaultProxy;
use crate::store::{self, RealStore, SharedStoreFaults};
use futures_util::FutureExt;
use pitfall_sim::checkers::check_all;
use pitfall_sim::faults::{FaultKind, FaultWindow};
use pitfall_sim::history::{value_repr, Event, FaultAction, History};
use pitfall_sim::runner::{plan_for, SeedRun, SeedStatus};
use pitfall_sim::scenario::Scenario;
use pitfall_sim::seed;
use pitfall_sim::topology::{self as t, Topology};
use pitfall_sim::workload::{self, product_name};
use pitfall_sim::world::{cdc_connectors, ORDERS_TOPICS};
use pitfall_system::blocks::cdc::{CdcConfig, CdcConnector};
use pitfall_system::blocks::consume::ConsumerLoop;
use pitfall_system::blocks::payload::CHUNKS;
use pitfall_system::blocks::recovery::Recovery;
use pitfall_system::ports::{Broker, ChangeFeed, ConsumerConfig, Database, Env, ObjectStore};
use pitfall_system::schema::{
    EFFECTS, FALLBACK_PREFIX, INVENTORY_SLOT, INVOICES, INVOICES_TOPIC, ORDERS, ORDERS_CDC_TOPIC,
    ORDERS_SLOT, ORDER_EVENTS, ORDER_SNAPSHOTS, ORDER_VIEW, PAYMENTS, PAYMENTS_CDC_TOPIC,
    PAYMENTS_SLOT, PAYMENTS_TOPIC, PROCESSED, REFUNDS, REJECTIONS, RELEASES, RESERVATIONS, STOCK,
};
use pitfall_system::services::archive::{self, Archive};
use pitfall_system::services::inventory::{ReserveStock, GROUP};
use pitfall_system::services::orders::translator::Translator;
use pitfall_system::services::orders::{self, OrdersService};
use pitfall_system::services::payments::{PayloadOutlet, PaymentsService};
use pitfall_system::variants::{Idempotency, OrdersModel, Publish};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::AssertSqlSafe;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Where the real services are.
#[derive(Clone, Debug)]
pub struct Targets {
    /// The broker's own listener.
    pub kafka: String,
    /// Where pitfall's broker fault proxy listens; the broker must advertise
    /// this address for broker faults to apply.
    pub kafka_proxy: String,
    pub database: String,
    pub object_store: String,
}

/// A service real mode needs and cannot use.
#[derive(Debug, thiserror::Error)]
#[error("{service} is not usable at {address}: {reason}\n  {hint}")]
pub struct Unreachable {
    pub service: &'static str,
    pub address: String,
    pub reason: String,
    pub hint: String,
}

const START_HINT: &str = "start the local services with `scripts/services.sh start` (Postgres with wal_level=logical, Apache Kafka on 127.0.0.1:9092 advertising the proxy at 127.0.0.1:19092)";

/// How real mode handles each fault kind.
pub fn fault_support(kind: FaultKind, broker_proxied: bool) -> Result<&'static str, String> {
    let broker = |what: &'static str| {
        if broker_proxied {
            Ok(what)
        } else {
            Err("skipped: the broker does not advertise the fault proxy's address".to_string())
        }
    };
    match kind {
        FaultKind::DbOutage => Ok("applied at the DB proxies (refuse, or blackhole then reset)"),
        FaultKind::DbSlow => Ok("applied at the DB proxies (50-600 ms per chunk)"),
        FaultKind::DbCrash => Ok("emulated: the DB proxies reset every connection and refuse new ones; Postgres keeps running"),
        FaultKind::DbLostAck => Ok("applied at the DB proxies (a reply is dropped and the connection cut)"),
        FaultKind::BrokerOutage => broker("applied at the broker proxy"),
        FaultKind::BrokerSlow => broker("applied at the broker proxy"),
        FaultKind::BrokerLostAck => broker("applied at the broker proxy"),
        FaultKind::BrokerCrash => Err("skipped: pitfall does not own the broker's process (scripts/services.sh starts it); broker-outage at the proxy covers its unavailability".into()),
        FaultKind::StoreOutage | FaultKind::StoreSlow => Ok("injected in the object-store adapter (a local folder has no network)"),
        FaultKind::Partition => Ok("DB links at their per-link proxies; shopper links in-process; broker links skipped (clients reconnect to the one advertised address)"),
        FaultKind::CrashPayments | FaultKind::CrashCdc | FaultKind::CrashRecovery => Ok("applied: the host's tasks are aborted and started again"),
        FaultKind::CrashInventory => Ok("applied: the member crashes at its next offset commit (after applying, before committing), or after 0.5 s"),
        FaultKind::DuplicateDelivery => Err("skipped: a real broker cannot be told to redeliver; redelivery comes from crashes and rebalances".into()),
        FaultKind::Reorder => Err("skipped: a real broker never reorders a partition; reordering comes from retries with several requests in flight".into()),
    }
}

/// Connections shared by every seed of a real-mode sweep.
pub struct RealWorld {
    pub targets: Targets,
    broker_proxy: FaultProxy,
    admin: KafkaAdmin,
    pg: PgPool,
    pg_options: PgConnectOptions,
    store: (Arc<dyn object_store::ObjectStore>, object_store::path::Path),
    /// Whether the broker advertises the proxy, so broker faults apply.
    pub broker_proxied: bool,
    pub advertised: Vec<String>,
}

fn same_address(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.trim_start_matches("tcp://")
            .replace("localhost", "127.0.0.1")
    };
    norm(a) == norm(b)
}

impl RealWorld {
    /// Check every service and open the shared connections.
    pub async fn connect(targets: Targets) -> Result<RealWorld, Unreachable> {
        let pg_err = |reason: String| Unreachable {
            service: "Postgres",
            address: targets.database.clone(),
            reason,
            hint: START_HINT.into(),
        };
        let pg_options =
            PgConnectOptions::from_str(&targets.database).map_err(|e| pg_err(e.to_string()))?;
        let pg = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(pg_options.clone())
            .await
            .map_err(|e| pg_err(e.to_string()))?;
        let (wal_level,): (String,) = sqlx::query_as("SHOW wal_level")
            .fetch_one(&pg)
            .await
            .map_err(|e| pg_err(e.to_string()))?;
        if wal_level != "logical" {
            return Err(Unreachable {
                service: "Postgres",
                address: targets.database.clone(),
                reason: format!("wal_level is {wal_level}; CDC by logical decoding needs wal_level=logical"),
                hint: "run `scripts/services.sh start`, or ALTER SYSTEM SET wal_level = logical and restart Postgres".into(),
            });
        }
        let store = store::open(&targets.object_store).map_err(|reason| Unreachable {
            service: "object store",
            address: targets.object_store.clone(),
            reason,
            hint: "pass --object-store file:///absolute/folder or an s3:// URL".into(),
        })?;
        let broker_proxy = FaultProxy::start(
            &targets.kafka_proxy,
            &targets.kafka,
            seed::rng(0, "proxy/broker"),
        )
        .await
        .map_err(|e| Unreachable {
            service: "broker fault proxy",
            address: targets.kafka_proxy.clone(),
            reason: e.to_string(),
            hint: "another pitfall run may hold this port; pass --kafka-proxy".into(),
        })?;
        let broker_err = |reason: String| Unreachable {
            service: "Kafka-compatible broker",
            address: targets.kafka.clone(),
            reason,
            hint: START_HINT.into(),
        };
        let admin = KafkaAdmin::new(&targets.kafka_proxy).map_err(|e| broker_err(e.to_string()))?;
        let advertised = {
            let admin = &admin;
            tokio::task::block_in_place(|| admin.advertised(Duration::from_secs(5)))
        }
        .map_err(|e| broker_err(e.to_string()))?;
        let broker_proxied = advertised
            .iter()
            .all(|a| same_address(a, &targets.kafka_proxy));
        Ok(RealWorld {
            targets,
            broker_proxy,
            admin,
            pg,
            pg_options,
            store,
            broker_proxied,
            advertised,
        })
    }

    /// The pinned librdkafka settings a scenario's services use.
    pub fn client_settings(
        &self,
        scenario: &Scenario,
    ) -> BTreeMap<String, BTreeMap<String, String>> {
        let consumer = consumer_config(scenario.variants.producer);
        BTreeMap::from([
            (
                "producer".to_string(),
                kafka::producer_settings(&self.targets.kafka_proxy, &scenario.producer),
            ),
            (
                "consumer".to_string(),
                kafka::consumer_settings(&self.targets.kafka_proxy, GROUP, &consumer),
            ),
        ])
    }
}

fn consumer_config(publish: Publish) -> ConsumerConfig {
    ConsumerConfig {
        group: GROUP.into(),
        topics: vec![publish.topic().to_string()],
        session_timeout_ms: 6_000,
        max_poll_records: 10,
    }
}

/// A real-mode seed: the run, and how each fault kind of its plan was
/// handled.
pub struct RealSeedRun {
    pub run: SeedRun,
    pub fault_handling: BTreeMap<FaultKind, String>,
}

/// What the per-host factories need.
struct HostCtx {
    scenario: Scenario,
    seed: u64,
    names: Arc<RunNames>,
    history: History,
    start: Instant,
    bootstrap: String,
    /// Per (host, logical db): connection options through that link's proxy.
    links: BTreeMap<(String, &'static str), PgConnectOptions>,
    store: (Arc<dyn object_store::ObjectStore>, object_store::path::Path),
    store_faults: SharedStoreFaults,
    front: Front,
    crash_tx: mpsc::UnboundedSender<String>,
    armed: BTreeMap<String, Arc<AtomicBool>>,
    incarnations: Mutex<BTreeMap<String, u32>>,
}

impl HostCtx {
    fn env(&self, host: &str) -> Arc<dyn Env> {
        let mut inc = self.incarnations.lock().unwrap();
        let n = inc.entry(host.to_string()).or_insert(0);
        let env = RealEnv::new(
            self.start,
            seed::rng(self.seed, &format!("host/{host}/{n}")),
        );
        *n += 1;
        Arc::new(env)
    }

    fn pool(&self, host: &str, db: &'static str) -> PgPool {
        PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(1))
            .connect_lazy_with(self.links[&(host.to_string(), db)].clone())
    }

    fn object_store(&self, host: &str) -> Arc<dyn ObjectStore> {
        Arc::new(RealStore::new(
            self.store.0.clone(),
            &self.store.1,
            &self.names.store_folder(),
            self.store_faults.clone(),
            self.history.clone(),
            host,
        ))
    }

    fn broker(&self, host: &str) -> KafkaBroker {
        KafkaBroker::new(
            &self.bootstrap,
            self.names.clone(),
            host,
            self.history.clone(),
        )
    }

    /// Start a host's software; returns its task.
    fn spawn(&self, host: &str) -> JoinHandle<()> {
        let publish = self.scenario.variants.producer;
        let context = self.scenario.variants.context;
        let env = self.env(host);
        if host == t::PAYMENTS {
            let producer = (publish != Publish::Cdc)
                .then(|| self.broker(host).producer(&self.scenario.producer));
            let mut service = PaymentsService::new(
                publish,
                Arc::new(PgDb::new(
                    self.pool(host, t::PAYMENTS_DB),
                    self.names.clone(),
                    t::PAYMENTS_DB,
                )),
                env,
                producer,
                Some(self.object_store(host)),
            );
            if let Some(p) = &self.scenario.payloads {
                service = service.with_payloads(PayloadOutlet {
                    producer: self
                        .broker(host)
                        .producer(&p.producer_config(&self.scenario.producer)),
                    store: self.object_store(host),
                    strategy: p.strategy,
                    codec: p.codec,
                    chunk_bytes: (p.chunk_kib * 1024) as usize,
                    max_message_bytes: MAX_MESSAGE_BYTES,
                });
            }
            let service = Arc::new(service);
            let (tx, mut rx) = mpsc::channel::<PayCall>(64);
            self.front.payments.open(tx);
            return tokio::spawn(async move {
                let mut handlers = JoinSet::new();
                while let Some((req, reply)) = rx.recv().await {
                    let service = service.clone();
                    handlers.spawn(async move {
                        let _ = reply.send(service.call(req).await);
                    });
                    while handlers.try_join_next().is_some() {}
                }
            });
        }
        if host == t::CDC {
            let producer = self.broker(host).producer(&self.scenario.producer);
            let mut tasks = JoinSet::new();
            for (db, config) in cdc_connectors(self.scenario.orders.as_ref().map(|o| o.model)) {
                let connector = CdcConnector::new(
                    Arc::new(PgFeed::new(self.pool(host, db), self.names.clone(), db)),
                    producer.clone(),
                    env.clone(),
                    CdcConfig {
                        propagate_context: context.propagates(),
                        ..config
                    },
                );
                tasks.spawn(connector.run());
            }
            // Aborting this task drops the set, which aborts the connectors.
            return tokio::spawn(async move { while tasks.join_next().await.is_some() {} });
        }
        if let Some(o) = &self.scenario.orders {
            if let Some(task) = self.spawn_orders_host(host, o.model, o.snapshot_every, env.clone())
            {
                return task;
            }
        }
        if host == t::RECOVERY {
            let recovery = Recovery::new(
                self.broker(host).producer(&self.scenario.producer),
                self.object_store(host),
                env,
                Duration::from_millis(500),
            )
            .propagate_context(context.propagates());
            return tokio::spawn(recovery.run());
        }
        if host == t::ARCHIVE {
            let strategy = self.scenario.payloads.as_ref().map(|p| p.strategy);
            let strategy = strategy.expect("the archive runs only with payloads");
            let broker = self.broker(host);
            let consumer = CrashAtCommit::new(
                broker.consumer(&ConsumerConfig {
                    group: archive::GROUP.into(),
                    topics: vec![INVOICES_TOPIC.into()],
                    session_timeout_ms: archive::SESSION_TIMEOUT_MS,
                    max_poll_records: archive::MAX_POLL_RECORDS,
                }),
                self.armed[host].clone(),
                host,
                self.crash_tx.clone(),
            );
            let db: Arc<dyn Database> = Arc::new(PgDb::new(
                self.pool(host, t::INVENTORY_DB),
                self.names.clone(),
                t::INVENTORY_DB,
            ));
            let reassembler = archive::reassembler(
                strategy,
                db.clone(),
                self.object_store(host),
                broker.reader(),
            );
            return tokio::spawn(Archive::new(Box::new(consumer), db, reassembler, env).run());
        }
        // An inventory member.
        let consumer = CrashAtCommit::new(
            self.broker(host).consumer(&consumer_config(publish)),
            self.armed[host].clone(),
            host,
            self.crash_tx.clone(),
        );
        let consumer_loop = ConsumerLoop::new(
            Box::new(consumer),
            Arc::new(PgDb::new(
                self.pool(host, t::INVENTORY_DB),
                self.names.clone(),
                t::INVENTORY_DB,
            )),
            Arc::new(ReserveStock::new(
                env.clone(),
                self.scenario.variants.ordering,
            )),
            env,
            self.scenario.variants.consumer,
        );
        tokio::spawn(consumer_loop.run())
    }
}

impl HostCtx {
    /// Pitfall 2's hosts; `None` for any other host.
    fn spawn_orders_host(
        &self,
        host: &str,
        model: OrdersModel,
        snapshot_every: u64,
        env: Arc<dyn Env>,
    ) -> Option<JoinHandle<()>> {
        let consumer = |group: &str, topics: Vec<&str>| {
            let config = ConsumerConfig {
                group: group.into(),
                topics: topics.into_iter().map(String::from).collect(),
                session_timeout_ms: 6_000,
                max_poll_records: 10,
            };
            Box::new(CrashAtCommit::new(
                self.broker(host).consumer(&config),
                self.armed[host].clone(),
                host,
                self.crash_tx.clone(),
            ))
        };
        let orders_db = || -> Arc<dyn Database> {
            Arc::new(PgDb::new(
                self.pool(host, t::ORDERS_DB),
                self.names.clone(),
                t::ORDERS_DB,
            ))
        };
        match host {
            t::ORDERS => {
                let db = orders_db();
                let (service, snapshotter) =
                    OrdersService::new(model, db.clone(), env.clone(), snapshot_every);
                let service = Arc::new(service);
                let tracker = ConsumerLoop::new(
                    consumer(
                        orders::GROUP,
                        orders::tracked_topics(self.scenario.variants.producer.topic()).to_vec(),
                    ),
                    db,
                    service.clone(),
                    env,
                    Idempotency::DedupeEventId,
                );
                let (tx, mut rx) = mpsc::channel::<OrdersMsg>(64);
                self.front.orders.open(tx);
                Some(tokio::spawn(async move {
                    let mut tasks = JoinSet::new();
                    tasks.spawn(tracker.run());
                    if let Some(snapshotter) = snapshotter {
                        tasks.spawn(snapshotter.run());
                    }
                    while let Some((req, reply)) = rx.recv().await {
                        let service = service.clone();
                        tasks.spawn(async move {
                            let _ = reply.send(service.call(req).await);
                        });
                        while tasks.try_join_next().is_some() {}
                    }
                }))
            }
            t::ORDER_VIEW => {
                let projection = ConsumerLoop::new(
                    consumer(orders::view::GROUP, vec![model.view_topic()]),
                    orders_db(),
                    Arc::new(orders::view::Project),
                    env,
                    Idempotency::DedupeEventId,
                );
                Some(tokio::spawn(projection.run()))
            }
            t::TRANSLATOR => {
                let translator = Translator::new(
                    consumer(orders::translator::GROUP, vec![ORDERS_CDC_TOPIC]),
                    self.broker(host).producer(&self.scenario.producer),
                    env,
                );
                Some(tokio::spawn(translator.run()))
            }
            _ => None,
        }
    }
}

/// The running services of one seed.
struct Supervisor {
    ctx: Arc<HostCtx>,
    tasks: BTreeMap<String, JoinHandle<()>>,
}

impl Supervisor {
    fn start_all(&mut self, hosts: &[String]) {
        for h in hosts {
            self.tasks.insert(h.clone(), self.ctx.spawn(h));
        }
    }

    fn crash(&mut self, host: &str) {
        if host == t::PAYMENTS {
            self.ctx.front.payments.close();
        }
        if host == t::ORDERS {
            self.ctx.front.orders.close();
        }
        if let Some(task) = self.tasks.remove(host) {
            task.abort();
        }
    }

    fn restart(&mut self, host: &str) {
        if !self.tasks.contains_key(host) {
            self.tasks.insert(host.to_string(), self.ctx.spawn(host));
        }
    }

    fn stop_all(&mut self) {
        self.ctx.front.close();
        for (_, task) in std::mem::take(&mut self.tasks) {
            task.abort();
        }
    }
}

/// Run one seed. Setup or collection failures fail the seed; everything the
/// run created is removed either way.
pub async fn run_seed(world: &RealWorld, scenario: &Scenario, seed_value: u64) -> RealSeedRun {
    let (config, plan) = plan_for(scenario, seed_value);
    let mut fault_handling = BTreeMap::new();
    for w in &plan.windows {
        let handling = match fault_support(w.kind, world.broker_proxied) {
            Ok(how) => how.to_string(),
            Err(why) => why,
        };
        fault_handling.insert(w.kind, handling);
    }
    let names = Arc::new(RunNames::new(&run_tag(seed_value)));
    let history = History::since_now();
    let start_epoch_ms = epoch_ms();
    let start = Instant::now();
    history.record(Event::Run {
        scenario: scenario.name.clone(),
        seed: seed_value,
        mode: "real".into(),
        variants: scenario.variant_names(),
    });
    let mut run = Run {
        world,
        scenario,
        names: names.clone(),
        history: history.clone(),
        proxies: BTreeMap::new(),
    };
    // A panic in the runner's own code fails the seed like any other error,
    // and the cleanup below still runs.
    let outcome = AssertUnwindSafe(run.execute(seed_value, &plan, start, start_epoch_ms))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic payload".into());
            Err(format!("panic in the real-mode runner: {message}"))
        });
    let cleanup = run.cleanup().await;
    let status = match (outcome, cleanup) {
        (Ok(()), Ok(())) => SeedStatus::Completed,
        (Err(e), _) => SeedStatus::Failed { reason: e },
        (Ok(()), Err(e)) => SeedStatus::Failed {
            reason: format!("cleanup failed: {e}"),
        },
    };
    let entries = history.sorted_entries();
    let violations = match status {
        SeedStatus::Completed => check_all(&entries),
        SeedStatus::Failed { .. } => Vec::new(),
    };
    RealSeedRun {
        run: SeedRun {
            seed: seed_value,
            status,
            config,
            plan,
            history: entries,
            violations,
            sim_ms: start.elapsed().as_millis() as u64,
        },
        fault_handling,
    }
}

/// Milliseconds since the Unix epoch: Postgres commit times and Kafka record
/// timestamps are wall-clock, so real-mode history times are too.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)] // real mode runs on the wall clock
fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A name tag unique to this run: the seed, the process and the time.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)] // real mode: run names must differ between runs
fn run_tag(seed_value: u64) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "s{seed_value}_{:x}{:x}",
        std::process::id(),
        nanos % 0xffff_ffff
    )
}

struct Run<'w> {
    world: &'w RealWorld,
    scenario: &'w Scenario,
    names: Arc<RunNames>,
    history: History,
    /// Per (host, logical db): the link's proxy.
    proxies: BTreeMap<(String, &'static str), FaultProxy>,
}

/// The orders DB's tables (pitfall 2).
const ORDERS_TABLES: [&str; 5] = [ORDERS, ORDER_EVENTS, ORDER_SNAPSHOTS, ORDER_VIEW, PROCESSED];

/// The inventory DB's tables, the archive's included.
const INVENTORY_TABLES: [&str; 8] = [
    STOCK,
    RESERVATIONS,
    REJECTIONS,
    RELEASES,
    EFFECTS,
    PROCESSED,
    INVOICES,
    CHUNKS,
];

impl Run<'_> {
    /// The run's object-store folder without faults, for the runner's own use.
    fn plain_store(&self, process: &str) -> RealStore {
        RealStore::new(
            self.world.store.0.clone(),
            &self.world.store.1,
            &self.names.store_folder(),
            SharedStoreFaults::default(),
            History::new(),
            process,
        )
    }

    /// The logical topics of this run.
    fn logical_topics(&self) -> Vec<&'static str> {
        let mut topics = vec![PAYMENTS_TOPIC, PAYMENTS_CDC_TOPIC, INVOICES_TOPIC];
        if self.scenario.orders.is_some() {
            topics.extend(ORDERS_TOPICS);
        }
        topics
    }

    fn topics(&self) -> Vec<String> {
        self.logical_topics()
            .iter()
            .map(|t| self.names.topic(t))
            .collect()
    }

    /// The run's replication slots, the history's own first.
    fn slots(&self) -> Vec<&'static str> {
        let mut slots = vec!["history", PAYMENTS_SLOT];
        if self.scenario.orders.is_some() {
            slots.extend([INVENTORY_SLOT, ORDERS_SLOT]);
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

    async fn setup(&mut self, topo: &Topology) -> Result<(), String> {
        let pg = &self.world.pg;
        postgres::create_tables(pg, &self.names, t::PAYMENTS_DB, &[PAYMENTS, REFUNDS])
            .await
            .map_err(|e| e.to_string())?;
        if self.scenario.orders.is_some() {
            postgres::create_tables(pg, &self.names, t::ORDERS_DB, &ORDERS_TABLES)
                .await
                .map_err(|e| e.to_string())?;
        }
        postgres::create_tables(pg, &self.names, t::INVENTORY_DB, &INVENTORY_TABLES)
            .await
            .map_err(|e| e.to_string())?;
        // The history's own slot sees every commit from here on, setup included.
        for slot in self.slots() {
            self.sql(format!(
                "SELECT pg_create_logical_replication_slot('{}', 'test_decoding')",
                self.names.slot(slot)
            ))
            .await?;
        }
        let mut tx = pg.begin().await.map_err(|e| e.to_string())?;
        for i in 0..self.scenario.workload.products {
            let sql = format!(
                "INSERT INTO {} (key, version, data) VALUES ($1, 1, $2)",
                self.names.table(t::INVENTORY_DB, STOCK)
            );
            sqlx::query(AssertSqlSafe(sql))
                .bind(product_name(i))
                .bind(serde_json::json!({ "available": self.scenario.workload.initial_stock }))
                .execute(&mut *tx)
                .await
                .map_err(|e| e.to_string())?;
        }
        tx.commit().await.map_err(|e| e.to_string())?;
        self.world
            .admin
            .create_topics(&self.topics(), self.scenario.run.partitions)
            .await
            .map_err(|e| format!("creating topics: {e}"))?;
        // One proxy per link from a service to a DB.
        let pg_addr = format!(
            "{}:{}",
            self.world.pg_options.get_host(),
            self.world.pg_options.get_port()
        );
        let mut links: Vec<(String, &'static str)> = vec![(t::PAYMENTS.into(), t::PAYMENTS_DB)];
        links.extend(topo.cdc().map(|h| (h.to_string(), t::PAYMENTS_DB)));
        links.extend(
            topo.consumer_hosts()
                .into_iter()
                .filter(|h| !topo.orders_hosts().contains(h))
                .map(|h| (h, t::INVENTORY_DB)),
        );
        if topo.orders.is_some() {
            links.push((t::CDC.into(), t::INVENTORY_DB));
            links.push((t::CDC.into(), t::ORDERS_DB));
            links.push((t::ORDERS.into(), t::ORDERS_DB));
            links.push((t::ORDER_VIEW.into(), t::ORDERS_DB));
        }
        for (host, db) in links {
            let rng = seed::rng(0, &format!("proxy/{host}/{db}"));
            let proxy = FaultProxy::start("127.0.0.1:0", &pg_addr, rng)
                .await
                .map_err(|e| format!("starting the DB proxy: {e}"))?;
            self.proxies.insert((host, db), proxy);
        }
        Ok(())
    }

    async fn execute(
        &mut self,
        seed_value: u64,
        plan: &pitfall_sim::faults::FaultPlan,
        start: Instant,
        start_epoch_ms: i64,
    ) -> Result<(), String> {
        let topo = self.scenario.topology();
        self.setup(&topo).await?;
        let (crash_tx, mut crash_rx) = mpsc::unbounded_channel();
        let ctx = Arc::new(HostCtx {
            scenario: self.scenario.clone(),
            seed: seed_value,
            names: self.names.clone(),
            history: self.history.clone(),
            start,
            bootstrap: self.world.targets.kafka_proxy.clone(),
            links: self
                .proxies
                .iter()
                .map(|(k, p)| {
                    let opts = self
                        .world
                        .pg_options
                        .clone()
                        .host(&p.addr().ip().to_string())
                        .port(p.addr().port());
                    (k.clone(), opts)
                })
                .collect(),
            store: self.world.store.clone(),
            store_faults: SharedStoreFaults::default(),
            front: Front::default(),
            crash_tx,
            armed: topo
                .consumer_hosts()
                .into_iter()
                .map(|h| (h, Arc::new(AtomicBool::new(false))))
                .collect(),
            incarnations: Mutex::default(),
        });
        let mut sup = Supervisor {
            ctx: ctx.clone(),
            tasks: BTreeMap::new(),
        };
        sup.start_all(&topo.services());

        let orders = workload::draw_orders(
            seed_value,
            &self.scenario.workload,
            self.scenario.payloads.as_ref(),
            self.scenario.run.chaos_ms(),
        );
        let mut shoppers = JoinSet::new();
        for (i, host) in topo.shopper_hosts().into_iter().enumerate() {
            let mine = orders
                .iter()
                .filter(|o| o.shopper == i as u32 + 1)
                .cloned()
                .collect();
            let checkout = ctx.front.checkout(&host);
            let history = self.history.clone();
            let attempts = self.scenario.workload.attempts;
            let place_orders = self.scenario.orders.is_some();
            shoppers.spawn(async move {
                let _ =
                    workload::shopper(host, mine, attempts, place_orders, history, checkout).await;
            });
        }

        // Chaos.
        let actions = plan.actions();
        self.history.record(Event::Phase {
            phase: "chaos".into(),
        });
        let chaos_end = start + Duration::from_millis(self.scenario.run.chaos_ms());
        for (at, begin, window) in actions {
            self.wait_until(start + Duration::from_millis(at), &mut sup, &mut crash_rx)
                .await;
            self.apply(window, begin, &mut sup);
        }
        self.wait_until(chaos_end, &mut sup, &mut crash_rx).await;

        // Heal.
        for proxy in self
            .proxies
            .values()
            .chain(std::iter::once(&self.world.broker_proxy))
        {
            proxy.heal();
            proxy.reset_connections();
        }
        *ctx.store_faults.lock().unwrap() = Default::default();
        for flag in ctx.armed.values() {
            flag.store(false, Ordering::SeqCst);
        }
        for host in topo.shopper_hosts() {
            ctx.front.set_cut(&host, t::PAYMENTS, false);
            ctx.front.set_cut(&host, t::ORDERS, false);
        }
        for host in topo.services() {
            sup.restart(&host);
        }
        self.history.record(Event::Phase {
            phase: "heal".into(),
        });

        // Drain.
        let deadline = Instant::now() + Duration::from_millis(self.scenario.run.drain_ms());
        let mut settled_since: Option<Instant> = None;
        let pending = loop {
            while let Ok(host) = crash_rx.try_recv() {
                tracing::debug!(host, "crash request after the heal ignored");
            }
            while shoppers.try_join_next().is_some() {}
            let pending = self.pending(shoppers.is_empty(), &topo).await;
            if pending.is_empty() {
                let since = *settled_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= Duration::from_secs(2) {
                    break pending;
                }
            } else {
                settled_since = None;
            }
            if Instant::now() >= deadline {
                break pending;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        self.history.record(Event::Drain {
            converged: pending.is_empty(),
            pending,
        });
        shoppers.abort_all();
        sup.stop_all();
        // Give aborted consumers a moment to leave the group.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.collect(start_epoch_ms).await
    }

    /// Sleep until `at`, crashing hosts that ask for it on the way.
    async fn wait_until(
        &self,
        at: Instant,
        sup: &mut Supervisor,
        crash_rx: &mut mpsc::UnboundedReceiver<String>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(at) => return,
                Some(host) = crash_rx.recv() => {
                    self.history.record(Event::Fault {
                        action: FaultAction::Start,
                        kind: "crash-inventory".into(),
                        target: format!("{host} (crashed at an offset commit)"),
                    });
                    sup.crash(&host);
                }
            }
        }
    }

    fn db_proxies(&self, db: &str) -> Vec<&FaultProxy> {
        self.proxies
            .iter()
            .filter(|((_, d), _)| *d == db)
            .map(|(_, p)| p)
            .collect()
    }

    fn apply(&self, w: &FaultWindow, start: bool, sup: &mut Supervisor) {
        if fault_support(w.kind, self.world.broker_proxied).is_err() {
            return;
        }
        let proxies: Vec<&FaultProxy> = match w.kind {
            FaultKind::DbOutage | FaultKind::DbSlow | FaultKind::DbCrash | FaultKind::DbLostAck => {
                self.db_proxies(&w.target)
            }
            FaultKind::BrokerOutage | FaultKind::BrokerSlow | FaultKind::BrokerLostAck => {
                vec![&self.world.broker_proxy]
            }
            _ => Vec::new(),
        };
        let mut applied = true;
        match w.kind {
            FaultKind::DbOutage | FaultKind::BrokerOutage => {
                for p in &proxies {
                    if w.blackhole {
                        p.set(|f| f.blackhole = start);
                        if !start {
                            p.reset_connections();
                        }
                    } else {
                        p.set(|f| f.refuse = start);
                        if start {
                            p.reset_connections();
                        }
                    }
                }
            }
            FaultKind::DbCrash => {
                for p in &proxies {
                    p.set(|f| f.refuse = start);
                    if start {
                        p.reset_connections();
                    }
                }
            }
            FaultKind::DbSlow | FaultKind::BrokerSlow => {
                for p in &proxies {
                    p.set(|f| f.latency_ms = start.then_some((50, 600)));
                }
            }
            FaultKind::DbLostAck | FaultKind::BrokerLostAck => {
                for p in &proxies {
                    p.set(|f| {
                        f.lost_response = if start {
                            w.probability.unwrap_or(0.2)
                        } else {
                            0.0
                        }
                    });
                }
            }
            FaultKind::StoreOutage => sup.ctx.store_faults.lock().unwrap().down = start,
            FaultKind::StoreSlow => {
                sup.ctx.store_faults.lock().unwrap().delay_ms = start.then_some(300)
            }
            FaultKind::Partition => {
                let (a, b) = w.target.split_once('|').expect("partition targets are a|b");
                let db = [t::PAYMENTS_DB, t::INVENTORY_DB, t::ORDERS_DB]
                    .into_iter()
                    .find(|db| *db == b);
                if let Some(db) = db {
                    if let Some(p) = self.proxies.get(&(a.to_string(), db)) {
                        p.set(|f| f.blackhole = start);
                        if !start {
                            p.reset_connections();
                        }
                    }
                } else if b == t::PAYMENTS || b == t::ORDERS {
                    sup.ctx.front.set_cut(a, b, start);
                } else {
                    applied = false;
                }
            }
            FaultKind::CrashInventory => {
                if start {
                    // Crash between applying and committing: at the next
                    // offset commit, or after 0.5 s if none comes.
                    let flag = sup.ctx.armed[&w.target].clone();
                    flag.store(true, Ordering::SeqCst);
                    let crash_tx = sup.ctx.crash_tx.clone();
                    let host = w.target.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        if flag.swap(false, Ordering::SeqCst) {
                            let _ = crash_tx.send(host);
                        }
                    });
                    applied = false; // recorded when it happens
                } else {
                    sup.ctx.armed[&w.target].store(false, Ordering::SeqCst);
                    sup.restart(&w.target);
                }
            }
            FaultKind::CrashPayments | FaultKind::CrashCdc | FaultKind::CrashRecovery => {
                if start {
                    sup.crash(&w.target);
                } else {
                    sup.restart(&w.target);
                }
            }
            FaultKind::BrokerCrash | FaultKind::DuplicateDelivery | FaultKind::Reorder => {
                applied = false
            }
        }
        if applied || !start {
            self.history.record(w.event(start));
        }
    }

    /// What keeps the system from being drained.
    async fn pending(&self, shoppers_done: bool, topo: &Topology) -> Vec<String> {
        let mut pending = Vec::new();
        if !shoppers_done {
            pending.push("shoppers still sending".to_string());
        }
        let mut consumers = vec![("inventory", GROUP, topo.publish.topic())];
        if topo.archive().is_some() {
            consumers.push(("archive", archive::GROUP, INVOICES_TOPIC));
        }
        for (group, topic) in pitfall_sim::runner::orders_consumers(topo) {
            consumers.push((group, group, topic));
        }
        for (who, group, logical) in consumers {
            let topic = self.names.topic(logical);
            let group = self.names.group(group);
            let parts = self.scenario.run.partitions;
            let admin = &self.world.admin;
            let lag = tokio::task::block_in_place(|| {
                let marks = admin.watermarks(&topic, parts, Duration::from_secs(2))?;
                let committed = admin.committed(&group, &topic, parts, Duration::from_secs(2))?;
                Ok::<_, rdkafka::error::KafkaError>((marks, committed))
            });
            match lag {
                Ok((marks, committed)) => {
                    for (p, ((_, high), c)) in marks.iter().zip(committed).enumerate() {
                        let c = c.unwrap_or(0);
                        if c < *high {
                            pending.push(format!("{who} lag {} on {logical}/{p}", high - c));
                        }
                    }
                }
                Err(e) => pending.push(format!("cannot read {who} lag: {e}")),
            }
        }
        match topo.publish {
            Publish::ResilientProducer => {
                let store = self.plain_store("drain");
                match store.list(FALLBACK_PREFIX).await {
                    Ok(keys) if !keys.is_empty() => pending.push(format!(
                        "{} record(s) parked in the object store",
                        keys.len()
                    )),
                    Ok(_) => {}
                    Err(e) => pending.push(format!("cannot list parked records: {e}")),
                }
            }
            Publish::Cdc | Publish::DualWrite | Publish::ProduceFirst => {}
        }
        let connectors = match topo.cdc() {
            Some(_) => cdc_connectors(topo.orders),
            None => Vec::new(),
        };
        for (db, config) in connectors {
            // The slot's unconfirmed changes of the captured tables, as the
            // connector would read them.
            let slot = config.slot.as_str();
            let feed = PgFeed::new(self.world.pg.clone(), self.names.clone(), db);
            match feed.poll(slot, 0, usize::MAX).await {
                Ok(changes) => {
                    let unconfirmed: BTreeSet<u64> = changes
                        .iter()
                        .filter(|c| config.routes.iter().any(|(table, _)| *table == c.table))
                        .map(|c| c.lsn)
                        .collect();
                    if !unconfirmed.is_empty() {
                        pending.push(format!(
                            "{slot} slot has {} unconfirmed transaction(s)",
                            unconfirmed.len()
                        ));
                    }
                }
                Err(e) => pending.push(format!("cannot read the {slot} slot: {e}")),
            }
        }
        pending
    }

    /// Facts from the authoritative sources: every commit from the history
    /// slot (with its commit time), every record in the broker's log.
    async fn collect(&self, start_epoch_ms: i64) -> Result<(), String> {
        let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
            r"SELECT lsn::text, data,
                     CASE WHEN data LIKE 'COMMIT%'
                          THEN (extract(epoch from substring(data from '\(at (.+)\)$')::timestamptz) * 1000)::bigint
                     END
              FROM pg_logical_slot_get_changes($1, NULL, NULL, 'include-timestamp', '1', 'skip-empty-xacts', '1')",
        )
        .bind(self.names.slot("history"))
        .fetch_all(&self.world.pg)
        .await
        .map_err(|e| format!("reading the history slot: {e}"))?;
        let mut changes: Vec<postgres::DecodedChange> = Vec::new();
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
            let mut by_db: BTreeMap<&'static str, Vec<pitfall_system::ports::Change>> =
                BTreeMap::new();
            for c in changes.drain(..) {
                let Some((db, table)) = self.names.logical_table(&c.table) else {
                    continue;
                };
                by_db
                    .entry(db)
                    .or_default()
                    .push(pitfall_system::ports::Change {
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
                        db: db.into(),
                        process: "postgres".into(),
                        lsn,
                        changes,
                    },
                );
            }
        }
        let admin = &self.world.admin;
        for logical in self.logical_topics() {
            let topic = self.names.topic(logical);
            let parts = self.scenario.run.partitions;
            let records = tokio::task::block_in_place(|| {
                admin.read_all(&topic, parts, Duration::from_secs(20))
            })
            .map_err(|e| format!("reading {topic}: {e}"))?;
            for r in records {
                let t = r
                    .timestamp_ms
                    .map_or(0, |ms| (ms - start_epoch_ms).max(0) as u64);
                self.history.record_at(
                    t,
                    Event::Append {
                        topic: logical.into(),
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

    /// Remove everything the run created: proxies, slots, tables, topics,
    /// objects. Keeps going after a failure and reports the first.
    async fn cleanup(&mut self) -> Result<(), String> {
        self.proxies.clear();
        let mut first_error: Option<String> = None;
        let mut note = |r: Result<(), String>| {
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        };
        for slot in self.slots() {
            let name = self.names.slot(slot);
            note(
                self.sql(format!(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{name}'"
                ))
                .await,
            );
        }
        for table in [PAYMENTS, REFUNDS] {
            note(
                self.sql(format!(
                    "DROP TABLE IF EXISTS {}",
                    self.names.table(t::PAYMENTS_DB, table)
                ))
                .await,
            );
        }
        for table in INVENTORY_TABLES {
            note(
                self.sql(format!(
                    "DROP TABLE IF EXISTS {}",
                    self.names.table(t::INVENTORY_DB, table)
                ))
                .await,
            );
        }
        if self.scenario.orders.is_some() {
            for table in ORDERS_TABLES {
                note(
                    self.sql(format!(
                        "DROP TABLE IF EXISTS {}",
                        self.names.table(t::ORDERS_DB, table)
                    ))
                    .await,
                );
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
