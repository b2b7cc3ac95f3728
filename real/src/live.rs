//! A real-mode seed while it runs: the system's services as tokio tasks
//! (started through its `Config::spawn`, aborted on a crash and started
//! again), its clients, and the driver's `World` over real time — applying
//! fault windows through [`crate::nemesis`] and answering the system's drain
//! probes from the broker, the slots and the object store.

use crate::infra::RunCtx;
use crate::kafka::ClientLog;
use crate::run::Run;
use pitfall_harness::crash_points::{Boundary, WithCrashPoints};
use pitfall_harness::driver::{Applied, World};
use pitfall_harness::faults::FaultWindow;
use pitfall_harness::history::{Event, FaultAction, History};
use pitfall_harness::system::{ClientCtx, Probe};
use pitfall_ports::ObjectStore;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// How long `stop` waits for an aborted host task to end.
const STOP_WAIT: Duration = Duration::from_secs(10);

pub struct Live<'r, 'w> {
    pub run: &'r Run<'w>,
    pub ctx: Arc<RunCtx>,
    tasks: BTreeMap<String, JoinHandle<()>>,
    clients: JoinSet<()>,
    crash_rx: mpsc::UnboundedReceiver<String>,
    /// Hosts whose crash point fired, and where.
    point_rx: mpsc::UnboundedReceiver<(String, Boundary)>,
    /// The fault each armed host will crash for, to record it when it does.
    pub armed_for: BTreeMap<String, String>,
    start: Instant,
}

impl<'r, 'w> Live<'r, 'w> {
    /// Start every service and client of the system.
    pub fn start(run: &'r Run<'w>, seed: u64, start: Instant, clients: ClientLog) -> Self {
        let (crash_tx, crash_rx) = mpsc::unbounded_channel();
        let (point_tx, point_rx) = mpsc::unbounded_channel();
        let links = run
            .proxies
            .iter()
            .map(|(link, proxy)| (link.clone(), proxy.addr()))
            .collect();
        let ctx = Arc::new(RunCtx::new(
            seed,
            run.names.clone(),
            run.history.clone(),
            start,
            Arc::new(run.scenario.topology.clone()),
            run.world.targets.kafka_proxy.clone(),
            run.world.db.clone(),
            links,
            run.world.store.clone(),
            crash_tx,
            point_tx,
            clients,
        ));
        let mut live = Live {
            run,
            ctx,
            tasks: BTreeMap::new(),
            clients: JoinSet::new(),
            crash_rx,
            point_rx,
            armed_for: BTreeMap::new(),
            start,
        };
        for host in &run.scenario.topology.services {
            live.restart(host);
        }
        for client in run.scenario.config.clients(seed, &run.scenario.run) {
            let ctx = ClientCtx {
                rpc: live.ctx.front.client(&client.name),
                history: run.history.clone(),
            };
            live.clients.spawn((client.run)(ctx));
        }
        live
    }

    /// Start `host` if it is not running.
    pub fn restart(&mut self, host: &str) {
        if !self.tasks.contains_key(host) {
            let infra = self.ctx.infra(host);
            let points = self.ctx.points(&infra);
            let running = self
                .run
                .scenario
                .config
                .spawn(host, &WithCrashPoints::new(&infra, points));
            self.tasks.insert(host.to_string(), tokio::spawn(running));
        }
    }

    /// Abort `host`'s software: what it held in memory is gone.
    pub fn crash(&mut self, host: &str) {
        if let Some(task) = self.tasks.remove(host) {
            task.abort();
        }
    }

    /// The end of the run: clients and services stop.
    pub async fn stop(&mut self) {
        self.ctx.front.close();
        let hosts: Vec<JoinHandle<()>> = std::mem::take(&mut self.tasks).into_values().collect();
        for task in &hosts {
            task.abort();
        }
        // Wait until nothing of the run still runs, so the cleanup after it
        // removes what the run created for good: an aborted task stops at
        // its next await, not at once.
        self.clients.shutdown().await;
        for task in hosts {
            if tokio::time::timeout(STOP_WAIT, task).await.is_err() {
                tracing::warn!("a host task did not stop within {STOP_WAIT:?}");
            }
        }
        // Give aborted consumers a moment to leave their groups.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    /// A host armed to crash at its next offset commit asks for it: crash
    /// it and record the fault.
    fn crash_requested(&mut self, host: String) {
        let fault = self
            .armed_for
            .remove(&host)
            .unwrap_or_else(|| "crash".into());
        self.run.history.record(Event::Fault {
            action: FaultAction::Start,
            kind: fault,
            target: format!("{host} (crashed at an offset commit)"),
        });
        self.crash(&host);
    }

    /// A host whose crash point fired waits there for good: crash it and
    /// start it again at once, as the simulation does. Nothing after the
    /// boundary ran in that incarnation.
    fn crash_at_boundary(&mut self, host: String, boundary: Boundary) {
        if !self.tasks.contains_key(&host) {
            return;
        }
        for action in [FaultAction::Start, FaultAction::Stop] {
            self.run.history.record(Event::Fault {
                action,
                kind: "crash-point".into(),
                target: format!("{host} ({})", boundary.name()),
            });
        }
        self.crash(&host);
        self.restart(&host);
    }

    /// Crash points that fired since the last look (after the heal too: a
    /// host that fired just before it is stuck at its boundary).
    fn crash_at_boundaries(&mut self) {
        while let Ok((host, boundary)) = self.point_rx.try_recv() {
            self.crash_at_boundary(host, boundary);
        }
    }

    async fn probe(&self, probe: &Probe, pending: &mut Vec<String>) {
        match probe {
            Probe::Lag {
                label,
                group,
                topic,
            } => self.lag(label, group, topic, pending),
            Probe::Feed { db, slot, tables } => {
                // The slot's unconfirmed changes of the captured tables, as
                // the connector would read them.
                let feed = self.run.world.db.feed(&self.run.names, db, None, None);
                match feed.poll(slot, 0, usize::MAX).await {
                    Ok(changes) => {
                        let unconfirmed: BTreeSet<u64> = changes
                            .iter()
                            .filter(|c| tables.contains(&c.table))
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
            Probe::Empty { prefix, what } => {
                match self.run.plain_store("drain").list(prefix).await {
                    Ok(keys) if !keys.is_empty() => pending.push(format!("{} {what}", keys.len())),
                    Ok(_) => {}
                    Err(e) => pending.push(format!("cannot list {prefix}: {e}")),
                }
            }
        }
    }

    fn lag(&self, label: &str, group: &str, logical: &str, pending: &mut Vec<String>) {
        let topic = self.run.names.topic(logical);
        let group = self.run.names.group(group);
        let parts = self.run.scenario.run.partitions;
        let admin = &self.run.world.admin;
        let lag = tokio::task::block_in_place(|| {
            let marks = admin.watermarks(&topic, parts, Duration::from_secs(2))?;
            let committed = admin.committed(&group, &topic, parts, Duration::from_secs(2))?;
            let mut lag = Vec::new();
            for (p, ((_, high), c)) in marks.iter().zip(committed).enumerate() {
                let c = c.unwrap_or(0);
                let behind = c < *high
                    && admin.readable_between(
                        &topic,
                        p as u32,
                        c,
                        *high,
                        Duration::from_secs(2),
                    )?;
                if behind {
                    lag.push((p, high - c));
                }
            }
            Ok::<_, rdkafka::error::KafkaError>(lag)
        });
        match lag {
            Ok(lag) => {
                for (p, n) in lag {
                    pending.push(format!("{label} lag {n} on {logical}/{p}"));
                }
            }
            Err(e) => pending.push(format!("cannot read {label} lag: {e}")),
        }
    }
}

impl World for Live<'_, '_> {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn history(&self) -> &History {
        &self.run.history
    }

    /// Sleep until `at_ms`, crashing hosts that ask for it on the way.
    async fn advance_to(&mut self, at_ms: u64) -> Result<(), String> {
        let at = self.start + Duration::from_millis(at_ms);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(at) => return Ok(()),
                Some(host) = self.crash_rx.recv() => self.crash_requested(host),
                Some((host, boundary)) = self.point_rx.recv() => self.crash_at_boundary(host, boundary),
            }
        }
    }

    fn apply(&mut self, window: &FaultWindow, start: bool) -> Applied {
        crate::nemesis::apply(self, window, start)
    }

    fn heal(&mut self) {
        crate::nemesis::heal(self);
        self.crash_at_boundaries();
        while let Ok(host) = self.crash_rx.try_recv() {
            tracing::debug!(host, "crash request after the heal ignored");
        }
        for flag in self.ctx.armed.lock().unwrap().values() {
            flag.store(false, Ordering::SeqCst);
        }
        for host in self.run.scenario.topology.services.clone() {
            self.restart(&host);
        }
    }

    async fn pending(&mut self) -> Vec<String> {
        self.crash_at_boundaries();
        while let Ok(host) = self.crash_rx.try_recv() {
            tracing::debug!(host, "crash request after the heal ignored");
        }
        while self.clients.try_join_next().is_some() {}
        let mut pending = Vec::new();
        if !self.clients.is_empty() {
            pending.push("clients still running".to_string());
        }
        for probe in &self.run.scenario.topology.probes {
            self.probe(probe, &mut pending).await;
        }
        pending
    }
}
