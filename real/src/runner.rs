//! Real mode's shared connections and one seed: the same scenario, system
//! code, fault plan (drawn from the seed), history format and checkers as
//! the simulation, driven by the harness's one driver. The seed's resources
//! are set up and removed by [`crate::run`]; while it runs, [`crate::live`]
//! is the driver's world. Seeds reproduce the fault plan and the workload,
//! not the timing.

use crate::dbserver::{self, DbServer};
use crate::kafka::{ClientLog, KafkaAdmin};
use crate::live::Live;
use crate::names::RunNames;
use crate::proxy::FaultProxy;
use crate::run::Run;
use crate::store;
use futures_util::FutureExt;
use pitfall_harness::checkers::check_all;
use pitfall_harness::driver::drive;
use pitfall_harness::history::{Event, History};
use pitfall_harness::scenario::Scenario;
use pitfall_harness::seed;
use pitfall_harness::sweep::{self_check, SeedRun, SeedStatus};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
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

pub(crate) const START_HINT: &str = "start the local services with `scripts/services.sh start` (Postgres with wal_level=logical, MariaDB with the binlog on, Apache Kafka on 127.0.0.1:9092 advertising the proxy at 127.0.0.1:19092)";

/// Connections shared by every seed of a real-mode sweep.
pub struct RealWorld {
    pub targets: Targets,
    pub(crate) broker_proxy: FaultProxy,
    pub(crate) admin: KafkaAdmin,
    /// The DB server holding the run's logical DBs.
    pub db: Arc<dyn DbServer>,
    pub(crate) store: (Arc<dyn object_store::ObjectStore>, object_store::path::Path),
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
        let db = dbserver::connect(&targets.database)
            .await
            .map_err(|(service, reason)| Unreachable {
                service,
                address: targets.database.clone(),
                reason,
                hint: START_HINT.into(),
            })?;
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
            db,
            store,
            broker_proxied,
            advertised,
        })
    }
}

/// A real-mode seed: the run, how each fault of its plan was handled, and
/// the librdkafka settings its clients used.
pub struct RealSeedRun {
    pub run: SeedRun,
    pub fault_handling: BTreeMap<String, String>,
    pub clients: ClientLog,
}

/// Run one seed. Setup or collection failures fail the seed; everything the
/// run created is removed either way.
pub async fn run_seed(world: &RealWorld, scenario: &Scenario, seed_value: u64) -> RealSeedRun {
    let (config, plan) = scenario.plan(seed_value);
    let fault_handling = plan
        .windows
        .iter()
        .map(|w| {
            let how = crate::nemesis::support(w.kind, world.broker_proxied);
            (w.fault.clone(), how.unwrap_or_else(|why| why))
        })
        .collect();
    let dbs: Vec<String> = scenario
        .topology
        .dbs
        .iter()
        .map(|d| d.name.clone())
        .collect();
    let names = Arc::new(RunNames::new(&run_tag(seed_value), &dbs));
    let history = History::since_now();
    let start_epoch_ms = epoch_ms();
    let start = Instant::now();
    history.record(Event::Run {
        scenario: scenario.name.clone(),
        seed: seed_value,
        mode: "real".into(),
        system: scenario.system.name().into(),
        variants: scenario.variants(),
    });
    let clients = ClientLog::default();
    let mut run = Run::new(world, scenario, names, history.clone());
    // A panic in the runner's own code fails the seed like any other error,
    // and the cleanup below still runs.
    let outcome = AssertUnwindSafe(execute(&mut run, seed_value, &plan, start, &clients))
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
    let outcome = match outcome {
        Ok(()) => run.collect(start_epoch_ms).await,
        Err(e) => Err(e),
    };
    let cleanup = run.cleanup().await;
    let status = match (outcome, cleanup) {
        (Ok(()), Ok(())) => SeedStatus::Completed,
        (Err(e), _) => SeedStatus::Failed { reason: e },
        (Ok(()), Err(e)) => SeedStatus::Failed {
            reason: format!("cleanup failed: {e}"),
        },
    };
    let entries = history.sorted_entries();
    let status = self_check(status, &entries);
    let violations = match status {
        SeedStatus::Completed => check_all(&scenario.invariants(), &entries),
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
        clients,
    }
}

/// Set the seed's resources up, start the system, and drive it.
async fn execute(
    run: &mut Run<'_>,
    seed_value: u64,
    plan: &pitfall_harness::faults::FaultPlan,
    start: Instant,
    clients: &ClientLog,
) -> Result<(), String> {
    run.setup().await?;
    let mut live = Live::start(run, seed_value, start, clients.clone());
    let driven = drive(&mut live, plan, &run.scenario.run).await;
    live.stop().await;
    driven
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
