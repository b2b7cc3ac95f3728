//! The turmoil world of one scenario and seed: the simulated servers (the
//! system's DBs, the broker, the object store), the system's service hosts
//! started through its `Config::spawn` with simulated adapters, and its
//! clients. As a driver `World` it steps the simulation, applies fault
//! windows (see [`crate::nemesis`]) and evaluates the system's drain probes.

use crate::adapters::rpc::{Door, SimRpc};
use crate::infra::SimInfra;
use crate::servers::broker::{BrokerServer, BrokerState};
use crate::servers::db::{DbServer, DbState};
use crate::servers::store::{StoreServer, StoreState};
use crate::servers::{ServerFaults, SharedFaults};
use crate::wire;
use pitfall_harness::crash_points::{ActivePoints, Boundary, Points, WithCrashPoints};
use pitfall_harness::driver::{Applied, World};
use pitfall_harness::faults::{DrawnConfig, FaultWindow};
use pitfall_harness::history::{Event, FaultAction, History};
use pitfall_harness::scenario::Scenario;
use pitfall_harness::seed;
use pitfall_harness::sweep::Limits;
use pitfall_harness::system::{ClientCtx, Infra, Probe, Topology, BROKER, STORE};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

/// Hosts that asked to be crashed at a boundary, in the order they asked.
type CrashRequests = Arc<Mutex<Vec<(String, Boundary)>>>;

/// The world of one seed, with the handles the nemesis and the probes use.
pub struct SimWorld<'a> {
    pub sim: turmoil::Sim<'a>,
    pub history: History,
    pub topology: Arc<Topology>,
    pub dbs: BTreeMap<String, DbServer>,
    pub broker: BrokerServer,
    pub store: StoreServer,
    /// Each service's front-door fault switch (the `api-*` faults).
    pub doors: BTreeMap<String, SharedFaults>,
    /// Active partitions by (a, b), counted so overlapping windows nest.
    pub(crate) cuts: BTreeMap<(String, String), u32>,
    /// The crash and fail points switched on now.
    pub(crate) points: ActivePoints,
    /// Hosts whose crash point fired during the last step.
    crash_requests: CrashRequests,
    clients_done: bool,
    limits: Limits,
    #[allow(clippy::disallowed_types)] // the wall-clock limit is outside the simulation
    wall_start: std::time::Instant,
    /// Simulated time per step.
    tick_ms: u64,
    /// Steps, run or skipped as quiet.
    steps: u64,
    /// Steps in which no frame was sent and nothing was recorded.
    idle_steps: u64,
    /// Steps run (not skipped): the wall-clock limit is checked every 512.
    run_steps: u64,
    /// [`wire::frames_sent`] when the world was built.
    frames_at_build: u64,
}

/// How the simulation steps hosts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stepping {
    /// Leave alone a host with nothing to run, and move time at once over
    /// steps in which no host would run (see ARCHITECTURE.md, "Stepping the
    /// simulation").
    #[default]
    SkipIdle,
    /// Tick every running host on every step, as turmoil does unpatched: the
    /// reference a seed's history under [`Stepping::SkipIdle`] must equal.
    EveryHost,
}

/// What stepping one seed cost, for the benchmark: turmoil steps, the idle
/// ones among them, those moved over at once as quiet, the host runtimes
/// ticked, and the frames sent over the simulated network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepStats {
    pub steps: u64,
    pub idle_steps: u64,
    /// Steps no host ran in, moved over at once ([`turmoil::Sim::skip_quiet_steps`]).
    pub skipped_steps: u64,
    /// Host runtimes ticked, over all steps.
    pub host_ticks: u64,
    pub frames: u64,
}

impl<'a> SimWorld<'a> {
    /// Build the world; everything it does is recorded into `history`.
    #[allow(clippy::disallowed_methods)] // the wall-clock limit is outside the simulation
    pub fn build(
        scenario: &Scenario,
        seed_value: u64,
        drawn: &DrawnConfig,
        time_limit: Duration,
        history: History,
        limits: Limits,
    ) -> SimWorld<'a> {
        let topology = Arc::new(scenario.topology.clone());
        let (min_lat, max_lat) = drawn.latency_ms;
        let mut sim = turmoil::Builder::new()
            .rng_seed(seed::sub_seed(seed_value, "network"))
            .epoch(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
            .simulation_duration(time_limit)
            .min_message_latency(Duration::from_millis(min_lat))
            .max_message_latency(Duration::from_millis(max_lat))
            .enable_random_order()
            .tick_duration(Duration::from_millis(scenario.run.tick_ms))
            .build();
        let faults =
            |host: &str| ServerFaults::shared(seed::rng(seed_value, &format!("server/{host}")));

        let mut dbs = BTreeMap::new();
        for spec in &topology.dbs {
            let server = DbServer {
                committed: Default::default(),
                name: spec.name.clone(),
                state: Arc::new(Mutex::new(DbState::with_slots(spec.slots.clone()))),
                faults: faults(&spec.name),
                history: history.clone(),
            };
            server.seed(
                spec.rows
                    .iter()
                    .map(|r| (r.table.clone(), r.key.clone(), r.data.clone()))
                    .collect(),
            );
            let s = server.clone();
            sim.host(spec.name.clone(), move || s.clone().serve());
            dbs.insert(spec.name.clone(), server);
        }

        let mut broker_state = BrokerState::default();
        for topic in &topology.topics {
            broker_state.create_topic(topic, scenario.run.partitions);
        }
        let broker = BrokerServer {
            state: Arc::new(Mutex::new(broker_state)),
            faults: faults(BROKER),
            history: history.clone(),
            changed: Default::default(),
            deadlines: Default::default(),
        };
        let b = broker.clone();
        sim.host(BROKER, move || b.clone().serve());

        let store = StoreServer {
            state: Arc::new(Mutex::new(StoreState::default())),
            faults: faults(STORE),
            history: history.clone(),
        };
        let s = store.clone();
        sim.host(STORE, move || s.clone().serve());

        let points = ActivePoints::default();
        let crash_requests = CrashRequests::default();
        let mut doors = BTreeMap::new();
        for host in &topology.services {
            let door = faults(&format!("door/{host}"));
            doors.insert(host.clone(), door.clone());
            let service = Service {
                host,
                door,
                seed_value,
                history: &history,
                topology: &topology,
                points: &points,
                crash_requests: &crash_requests,
            };
            spawn_service(&mut sim, scenario, service);
        }
        for client in scenario.config.clients(seed_value, &scenario.run) {
            let ctx = ClientCtx {
                rpc: Arc::new(SimRpc),
                history: history.clone(),
            };
            let run = (client.run)(ctx);
            sim.client(client.name.as_str(), async move {
                run.await;
                Ok(())
            });
        }

        SimWorld {
            sim,
            history,
            topology,
            dbs,
            broker,
            store,
            doors,
            cuts: BTreeMap::new(),
            points,
            crash_requests,
            clients_done: false,
            limits,
            wall_start: std::time::Instant::now(),
            tick_ms: scenario.run.tick_ms,
            steps: 0,
            idle_steps: 0,
            run_steps: 0,
            frames_at_build: wire::frames_sent(),
        }
    }

    /// Step this world as `stepping` says (from the start: call it before
    /// the first step).
    pub fn set_stepping(&mut self, stepping: Stepping) {
        if stepping == Stepping::EveryHost {
            self.sim.tick_every_host();
        }
    }

    /// Steps, idle steps and frames so far.
    pub fn step_stats(&self) -> StepStats {
        StepStats {
            steps: self.steps,
            idle_steps: self.idle_steps,
            skipped_steps: self.steps - self.run_steps,
            host_ticks: self.sim.host_ticks(),
            frames: wire::frames_sent() - self.frames_at_build,
        }
    }

    fn step(&mut self) -> Result<(), String> {
        self.history.set_now_ms(self.now_ms());
        let before = (wire::frames_sent(), self.history.len());
        match self.sim.step() {
            Ok(done) => self.clients_done = done,
            Err(e) => return Err(format!("simulation error at t={}ms: {e}", self.now_ms())),
        }
        self.steps += 1;
        self.run_steps += 1;
        if (wire::frames_sent(), self.history.len()) == before {
            self.idle_steps += 1;
        }
        self.crash_at_boundaries();
        if self.run_steps.is_multiple_of(512) && self.wall_start.elapsed() > self.limits.wall {
            return Err(format!(
                "hang: wall-clock limit of {:?} exceeded at simulated t={}ms",
                self.limits.wall,
                self.now_ms()
            ));
        }
        Ok(())
    }

    /// Crash and restart the hosts whose crash point fired in the last step:
    /// nothing after the boundary ran, and what they held in memory is gone.
    fn crash_at_boundaries(&mut self) {
        let requests = std::mem::take(&mut *self.crash_requests.lock().unwrap());
        for (host, boundary) in requests {
            if !self.sim.is_host_running(host.as_str()) {
                continue;
            }
            self.history.set_now_ms(self.now_ms());
            for action in [FaultAction::Start, FaultAction::Stop] {
                self.history.record(Event::Fault {
                    action,
                    kind: "crash-point".into(),
                    target: format!("{host} ({})", boundary.name()),
                });
            }
            self.sim.bounce(host.as_str());
        }
    }

    /// What a probe finds still pending, if anything.
    fn probe(&self, probe: &Probe, pending: &mut Vec<String>) {
        match probe {
            Probe::Lag {
                label,
                group,
                topic,
            } => {
                let broker = self.broker.state.lock().unwrap();
                for (p, end) in broker.readable_ends(topic).into_iter().enumerate() {
                    let committed = broker.committed(group, topic, p as u32).unwrap_or(0);
                    if committed < end {
                        pending.push(format!("{label} lag {} on {topic}/{p}", end - committed));
                    }
                }
            }
            Probe::Feed { db, slot, .. } => {
                let db = self.dbs[db].state.lock().unwrap();
                let (pos, head) = (db.slot_position(slot), db.head());
                if pos < head {
                    pending.push(format!("{slot} slot confirmed to {pos} of {head}"));
                }
            }
            Probe::Empty { prefix, what } => {
                let n = self.store.state.lock().unwrap().keys(prefix).len();
                if n > 0 {
                    pending.push(format!("{n} {what}"));
                }
            }
        }
    }
}

/// What a service host's incarnations share.
struct Service<'w> {
    host: &'w str,
    door: SharedFaults,
    seed_value: u64,
    history: &'w History,
    topology: &'w Arc<Topology>,
    points: &'w ActivePoints,
    crash_requests: &'w CrashRequests,
}

/// Register a service host: each (re)start hands a fresh incarnation of its
/// infrastructure, with the crash and fail points, to the system's `spawn`.
fn spawn_service(sim: &mut turmoil::Sim<'_>, scenario: &Scenario, service: Service<'_>) {
    let config = scenario.config.clone();
    let history = service.history.clone();
    let topology = service.topology.clone();
    let points = service.points.clone();
    let requests = service.crash_requests.clone();
    let seed_value = service.seed_value;
    let door = Door {
        host: service.host.to_string(),
        faults: service.door,
        history: history.clone(),
    };
    let incarnation = Rc::new(Cell::new(0u32));
    let name = service.host.to_string();
    sim.host(service.host, move || {
        let n = incarnation.get();
        incarnation.set(n + 1);
        let infra = SimInfra::new(&name, n, seed_value, door.clone(), topology.clone());
        let (requests, host) = (requests.clone(), name.clone());
        let crash = Arc::new(move |boundary: Boundary| {
            requests.lock().unwrap().push((host.clone(), boundary));
        });
        let points = Points::new(&name, points.clone(), infra.env(), crash);
        let running = config.spawn(&name, &WithCrashPoints::new(&infra, points));
        async move {
            running.await;
            Ok(())
        }
    });
}

impl World for SimWorld<'_> {
    fn now_ms(&self) -> u64 {
        self.sim.elapsed().as_millis() as u64
    }

    fn history(&self) -> &History {
        &self.history
    }

    /// Step until `at_ms`, moving time at once over steps in which no host
    /// would run and no message would arrive (as stepping them would: the
    /// same random draws, the same clocks).
    async fn advance_to(&mut self, at_ms: u64) -> Result<(), String> {
        while self.now_ms() < at_ms {
            let left = (at_ms - self.now_ms()).div_ceil(self.tick_ms);
            let quiet = self.sim.quiet_steps(left);
            if quiet > 0 {
                self.sim.skip_quiet_steps(quiet);
                self.steps += quiet;
                self.idle_steps += quiet;
                continue;
            }
            self.step()?;
        }
        Ok(())
    }

    fn apply(&mut self, window: &FaultWindow, start: bool) -> Applied {
        self.history.set_now_ms(self.now_ms());
        crate::nemesis::apply(self, window, start);
        Applied::Now
    }

    fn heal(&mut self) {
        crate::nemesis::heal(self);
    }

    async fn pending(&mut self) -> Vec<String> {
        let mut pending = Vec::new();
        if !self.clients_done {
            pending.push("clients still running".to_string());
        }
        for probe in &self.topology.probes {
            self.probe(probe, &mut pending);
        }
        pending
    }
}
