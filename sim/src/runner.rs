//! Runs one seed: draw the fault configuration and plan, build the world, then
//! drive it through the two phases — chaos (workload plus faults) and heal and
//! drain (faults stop; the system must converge in bounded simulated time) —
//! and check the history.

use crate::checkers::{check_all, Violation};
use crate::faults::{self, DrawnConfig, FaultKind, FaultPlan, FaultWindow};
use crate::history::{Entry, Event, History};
use crate::scenario::Scenario;
use crate::topology as t;
use crate::world::{cdc_connectors, World};
use pitfall_system::schema::{FALLBACK_PREFIX, INVOICES_TOPIC, ORDERS_CDC_TOPIC};
use pitfall_system::services::archive;
use pitfall_system::services::inventory::GROUP;
use pitfall_system::services::orders;
use pitfall_system::variants::Publish;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long the system must stay drained before the drain phase ends.
const SETTLE_MS: u64 = 2_000;
const QUIESCENCE_CHECK_MS: u64 = 100;

/// Wall-clock limit of one seed, checked between simulation steps. A step
/// that never returns is the sweep's watchdog's business.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub wall: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall: Duration::from_secs(120),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SeedStatus {
    Completed,
    /// The seed itself failed (panic, hang, simulation error): a harness or
    /// system bug, never an expected violation.
    Failed {
        reason: String,
    },
}

pub struct SeedRun {
    pub seed: u64,
    pub status: SeedStatus,
    pub config: DrawnConfig,
    pub plan: FaultPlan,
    pub history: Vec<Entry>,
    pub violations: Vec<Violation>,
    pub sim_ms: u64,
}

/// Draw the configuration and plan a seed will run with.
pub fn plan_for(scenario: &Scenario, seed: u64) -> (DrawnConfig, FaultPlan) {
    faults::draw(
        seed,
        &scenario.faults.allowed,
        &scenario.topology(),
        scenario.run.chaos_ms(),
    )
}

/// Run one seed to completion. Panics inside the simulation propagate; the
/// sweep isolates them.
pub fn run_seed(scenario: &Scenario, seed: u64, limits: Limits) -> SeedRun {
    let (config, plan) = plan_for(scenario, seed);
    let chaos_ms = scenario.run.chaos_ms();
    let drain_ms = scenario.run.drain_ms();
    let time_limit = Duration::from_millis(chaos_ms + drain_ms + 60_000);
    let history = History::new();
    history.record(Event::Run {
        scenario: scenario.name.clone(),
        seed,
        mode: "sim".into(),
        variants: scenario.variant_names(),
    });
    let mut world = World::build(scenario, seed, &config, time_limit, history);
    let mut driver = Driver::new(&mut world, limits);
    let status = match driver.drive(&plan, chaos_ms, drain_ms) {
        Ok(()) => SeedStatus::Completed,
        Err(reason) => SeedStatus::Failed { reason },
    };
    let sim_ms = world.sim.elapsed().as_millis() as u64;
    let history = world.history.entries();
    let violations = match status {
        SeedStatus::Completed => check_all(&history),
        SeedStatus::Failed { .. } => Vec::new(),
    };
    SeedRun {
        seed,
        status,
        config,
        plan,
        history,
        violations,
        sim_ms,
    }
}

/// Pitfall 2's consumer groups and the topics each must catch up on.
pub fn orders_consumers(topo: &t::Topology) -> Vec<(&'static str, &'static str)> {
    let Some(model) = topo.orders else {
        return Vec::new();
    };
    let mut groups: Vec<(&'static str, &'static str)> =
        orders::tracked_topics(topo.publish.topic())
            .into_iter()
            .map(|topic| (orders::GROUP, topic))
            .collect();
    groups.push((orders::view::GROUP, model.view_topic()));
    if model == pitfall_system::variants::OrdersModel::CrudCdc {
        groups.push((orders::translator::GROUP, ORDERS_CDC_TOPIC));
    }
    groups
}

struct Driver<'w, 'a> {
    world: &'w mut World<'a>,
    limits: Limits,
    /// Active partitions by (a, b), counted so overlapping windows nest.
    cuts: BTreeMap<(String, String), u32>,
    clients_done: bool,
    #[allow(clippy::disallowed_methods)] // the wall-clock limit is outside the simulation
    wall_start: std::time::Instant,
    steps: u64,
}

impl<'w, 'a> Driver<'w, 'a> {
    #[allow(clippy::disallowed_methods)] // the wall-clock limit is outside the simulation
    fn new(world: &'w mut World<'a>, limits: Limits) -> Self {
        Driver {
            world,
            limits,
            cuts: BTreeMap::new(),
            clients_done: false,
            wall_start: std::time::Instant::now(),
            steps: 0,
        }
    }

    fn now_ms(&self) -> u64 {
        self.world.sim.elapsed().as_millis() as u64
    }

    fn step(&mut self) -> Result<(), String> {
        self.world.history.set_now_ms(self.now_ms());
        match self.world.sim.step() {
            Ok(done) => self.clients_done = done,
            Err(e) => return Err(format!("simulation error at t={}ms: {e}", self.now_ms())),
        }
        self.steps += 1;
        if self.steps % 512 == 0 && self.wall_start.elapsed() > self.limits.wall {
            return Err(format!(
                "hang: wall-clock limit of {:?} exceeded at simulated t={}ms",
                self.limits.wall,
                self.now_ms()
            ));
        }
        Ok(())
    }

    fn drive(&mut self, plan: &FaultPlan, chaos_ms: u64, drain_ms: u64) -> Result<(), String> {
        let actions = plan.actions();
        let mut next = 0;

        self.record_phase("chaos");
        while self.now_ms() < chaos_ms {
            while next < actions.len() && actions[next].0 <= self.now_ms() {
                let (_, start, window) = actions[next];
                self.apply(window, start);
                next += 1;
            }
            self.step()?;
        }
        for &(_, start, window) in &actions[next..] {
            if !start {
                self.apply(window, false);
            }
        }
        self.heal_all();
        self.record_phase("heal");

        let deadline = chaos_ms + drain_ms;
        let mut settled_since: Option<u64> = None;
        let mut next_check = self.now_ms();
        let mut pending = self.pending();
        while self.now_ms() < deadline {
            self.step()?;
            if self.now_ms() >= next_check {
                next_check = self.now_ms() + QUIESCENCE_CHECK_MS;
                pending = self.pending();
                if pending.is_empty() {
                    let since = *settled_since.get_or_insert(self.now_ms());
                    if self.now_ms() - since >= SETTLE_MS {
                        break;
                    }
                } else {
                    settled_since = None;
                }
            }
        }
        let converged = pending.is_empty();
        self.world.history.set_now_ms(self.now_ms());
        self.world
            .history
            .record(Event::Drain { converged, pending });
        Ok(())
    }

    fn record_phase(&self, phase: &str) {
        self.world.history.set_now_ms(self.now_ms());
        self.world.history.record(Event::Phase {
            phase: phase.into(),
        });
    }

    fn cut(&mut self, a: &str, b: &str) {
        let key = if a <= b {
            (a.to_string(), b.to_string())
        } else {
            (b.to_string(), a.to_string())
        };
        let n = self.cuts.entry(key).or_insert(0);
        if *n == 0 {
            self.world.sim.partition(a, b);
        }
        *n += 1;
    }

    fn mend(&mut self, a: &str, b: &str) {
        let key = if a <= b {
            (a.to_string(), b.to_string())
        } else {
            (b.to_string(), a.to_string())
        };
        if let Some(n) = self.cuts.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.cuts.remove(&key);
                self.world.sim.repair(a, b);
            }
        }
    }

    /// Start or stop one fault window.
    fn apply(&mut self, w: &FaultWindow, start: bool) {
        self.world.history.set_now_ms(self.now_ms());
        self.world.history.record(w.event(start));
        let server = || -> &crate::servers::SharedFaults {
            match w.kind {
                FaultKind::DbOutage | FaultKind::DbSlow | FaultKind::DbLostAck => {
                    &self.world.dbs[&w.target].faults
                }
                FaultKind::StoreOutage | FaultKind::StoreSlow => &self.world.store.faults,
                _ => &self.world.broker.faults,
            }
        };
        match w.kind {
            FaultKind::DbOutage | FaultKind::BrokerOutage | FaultKind::StoreOutage
                if w.blackhole =>
            {
                let others: Vec<String> = self
                    .world
                    .topology
                    .all_hosts()
                    .into_iter()
                    .filter(|h| *h != w.target)
                    .collect();
                for other in others {
                    if start {
                        self.cut(&w.target, &other);
                    } else {
                        self.mend(&w.target, &other);
                    }
                }
            }
            FaultKind::DbOutage | FaultKind::BrokerOutage | FaultKind::StoreOutage => {
                server().lock().unwrap().down = start;
            }
            FaultKind::DbSlow | FaultKind::BrokerSlow | FaultKind::StoreSlow => {
                server().lock().unwrap().slow_ms = start.then_some((50, 600));
            }
            FaultKind::DbLostAck | FaultKind::BrokerLostAck => {
                server().lock().unwrap().lost_ack = if start {
                    w.probability.unwrap_or(0.2)
                } else {
                    0.0
                };
            }
            FaultKind::DuplicateDelivery => {
                server().lock().unwrap().duplicate_delivery = if start {
                    w.probability.unwrap_or(0.2)
                } else {
                    0.0
                };
            }
            FaultKind::Reorder => {
                server().lock().unwrap().reorder = if start {
                    w.probability.unwrap_or(0.3)
                } else {
                    0.0
                };
            }
            FaultKind::Partition => {
                let (a, b) = w.target.split_once('|').expect("partition targets are a|b");
                if start {
                    self.cut(a, b);
                } else {
                    self.mend(a, b);
                }
            }
            FaultKind::DbCrash
            | FaultKind::BrokerCrash
            | FaultKind::CrashPayments
            | FaultKind::CrashCdc
            | FaultKind::CrashRecovery
            | FaultKind::CrashInventory => {
                if start {
                    self.world.sim.crash(w.target.as_str());
                } else {
                    self.world.sim.bounce(w.target.as_str());
                }
            }
        }
    }

    /// Make sure nothing is left broken when the drain starts.
    fn heal_all(&mut self) {
        for (a, b) in std::mem::take(&mut self.cuts).into_keys() {
            self.world.sim.repair(a.as_str(), b.as_str());
        }
        for db in self.world.dbs.values() {
            db.faults.lock().unwrap().heal();
        }
        self.world.broker.faults.lock().unwrap().heal();
        self.world.store.faults.lock().unwrap().heal();
        for host in self
            .world
            .topology
            .servers()
            .into_iter()
            .chain(self.world.topology.services())
        {
            if !self.world.sim.is_host_running(host.as_str()) {
                self.world.sim.bounce(host.as_str());
            }
        }
    }

    /// What keeps the system from being drained, if anything.
    fn pending(&mut self) -> Vec<String> {
        let mut pending = Vec::new();
        if !self.clients_done {
            pending.push("shoppers still sending".to_string());
        }
        let topic = &self.world.consumed_topic;
        {
            let broker = self.world.broker.state.lock().unwrap();
            for (p, end) in broker.end_offsets(topic).into_iter().enumerate() {
                let committed = broker.committed(GROUP, topic, p as u32).unwrap_or(0);
                if committed < end {
                    pending.push(format!("inventory lag {} on {topic}/{p}", end - committed));
                }
            }
            let mut others: Vec<(&str, &str)> = Vec::new();
            if self.world.topology.archive().is_some() {
                others.push((archive::GROUP, INVOICES_TOPIC));
            }
            others.extend(orders_consumers(&self.world.topology));
            for (group, topic) in others {
                for (p, end) in broker.end_offsets(topic).into_iter().enumerate() {
                    let committed = broker.committed(group, topic, p as u32).unwrap_or(0);
                    if committed < end {
                        pending.push(format!("{group} lag {} on {topic}/{p}", end - committed));
                    }
                }
            }
        }
        if self.world.topology.cdc().is_some() {
            for (db, config) in cdc_connectors(self.world.topology.orders) {
                let db = self.world.dbs[db].state.lock().unwrap();
                let (pos, head) = (db.slot_position(&config.slot), db.head());
                if pos < head {
                    pending.push(format!("{} slot confirmed to {pos} of {head}", config.slot));
                }
            }
        }
        match self.world.topology.publish {
            Publish::ResilientProducer => {
                let parked = self
                    .world
                    .store
                    .state
                    .lock()
                    .unwrap()
                    .keys(FALLBACK_PREFIX)
                    .len();
                if parked > 0 {
                    pending.push(format!("{parked} record(s) parked in the object store"));
                }
            }
            Publish::Cdc | Publish::DualWrite | Publish::ProduceFirst => {}
        }
        pending
    }
}
