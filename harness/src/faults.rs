//! Fault kinds, the faults a scenario allows, the per-seed swarm draw and the
//! concrete fault plan.
//!
//! A scenario allows faults by name: a kind (`broker-outage`), `crash` (any
//! service host), `crash:<host>`, or a crash group the system names
//! (`crash-workers`). Each seed enables a random subset of them (swarm
//! testing), then draws timed windows for each from that fault's own
//! sub-seed, so adding a fault never reshuffles the others. Every parameter
//! a mode needs to apply a window is in the window: the plan is plain data,
//! recorded in the report and printed by `repro`.

use crate::crash_points::{crash_target, parse_target, Boundary};
use crate::seed;
use crate::system::{Topology, BROKER, STORE};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    DbOutage,
    DbSlow,
    DbCrash,
    DbLostAck,
    BrokerOutage,
    BrokerSlow,
    BrokerCrash,
    BrokerLostAck,
    StoreOutage,
    StoreSlow,
    Partition,
    Crash,
    DuplicateDelivery,
    Reorder,
    CrashPoint,
    FailPoint,
    ApiOutage,
    ApiSlow,
    ApiLostReply,
}

impl FaultKind {
    pub const ALL: [FaultKind; 19] = [
        FaultKind::DbOutage,
        FaultKind::DbSlow,
        FaultKind::DbCrash,
        FaultKind::DbLostAck,
        FaultKind::BrokerOutage,
        FaultKind::BrokerSlow,
        FaultKind::BrokerCrash,
        FaultKind::BrokerLostAck,
        FaultKind::StoreOutage,
        FaultKind::StoreSlow,
        FaultKind::Partition,
        FaultKind::Crash,
        FaultKind::DuplicateDelivery,
        FaultKind::Reorder,
        FaultKind::CrashPoint,
        FaultKind::FailPoint,
        FaultKind::ApiOutage,
        FaultKind::ApiSlow,
        FaultKind::ApiLostReply,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::DbOutage => "db-outage",
            FaultKind::DbSlow => "db-slow",
            FaultKind::DbCrash => "db-crash",
            FaultKind::DbLostAck => "db-lost-ack",
            FaultKind::BrokerOutage => "broker-outage",
            FaultKind::BrokerSlow => "broker-slow",
            FaultKind::BrokerCrash => "broker-crash",
            FaultKind::BrokerLostAck => "broker-lost-ack",
            FaultKind::StoreOutage => "store-outage",
            FaultKind::StoreSlow => "store-slow",
            FaultKind::Partition => "partition",
            FaultKind::Crash => "crash",
            FaultKind::DuplicateDelivery => "duplicate-delivery",
            FaultKind::Reorder => "reorder",
            FaultKind::CrashPoint => "crash-point",
            FaultKind::FailPoint => "fail-point",
            FaultKind::ApiOutage => "api-outage",
            FaultKind::ApiSlow => "api-slow",
            FaultKind::ApiLostReply => "api-lost-reply",
        }
    }

    pub fn from_name(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn describe(self) -> &'static str {
        match self {
            FaultKind::DbOutage => "a DB refuses connections or stops answering (blackhole)",
            FaultKind::DbSlow => "a DB delays every request",
            FaultKind::DbCrash => {
                "a DB crashes and restarts; commits survive, open transactions do not"
            }
            FaultKind::DbLostAck => "a DB commit applies but its reply is lost (outcome unknown)",
            FaultKind::BrokerOutage => {
                "the broker refuses connections or stops answering (blackhole)"
            }
            FaultKind::BrokerSlow => "the broker delays every request",
            FaultKind::BrokerCrash => {
                "the broker crashes and restarts; the acknowledged log survives"
            }
            FaultKind::BrokerLostAck => "an append applies but its ack is lost",
            FaultKind::StoreOutage => "the object store refuses connections",
            FaultKind::StoreSlow => "the object store delays every request",
            FaultKind::Partition => {
                "the network between two hosts that talk (a service and a server, or a client and a service) drops everything"
            }
            FaultKind::Crash => {
                "a service host crashes (losing what it held in memory) and restarts; `crash` is any service, `crash:<host>` one host"
            }
            FaultKind::DuplicateDelivery => {
                "the broker serves fetches again from the committed offset"
            }
            FaultKind::Reorder => {
                "the broker holds then refuses produces, so in-flight retries overtake"
            }
            FaultKind::CrashPoint => {
                "a service host crashes exactly at a boundary (before or after a DB commit, produce, offset commit, slot confirm, object put or delete) and restarts"
            }
            FaultKind::FailPoint => {
                "a call fails exactly at a boundary: before it (not done) or after it (done, but the caller cannot know)"
            }
            FaultKind::ApiOutage => "a host's front door (an API other hosts call) refuses every call",
            FaultKind::ApiSlow => "a host's front door delays every call",
            FaultKind::ApiLostReply => {
                "a host's front door handles a call but its reply is lost: the caller times out after the callee acted"
            }
        }
    }

    /// Hosts (or `a|b` links) this kind can hit in a topology; empty when
    /// the kind does not apply.
    fn targets(self, topo: &Topology) -> Vec<String> {
        let one = |h: &str| vec![h.to_string()];
        match self {
            FaultKind::DbOutage | FaultKind::DbSlow | FaultKind::DbCrash | FaultKind::DbLostAck => {
                topo.dbs.iter().map(|d| d.name.clone()).collect()
            }
            FaultKind::BrokerOutage
            | FaultKind::BrokerSlow
            | FaultKind::BrokerCrash
            | FaultKind::BrokerLostAck
            | FaultKind::DuplicateDelivery
            | FaultKind::Reorder => one(BROKER),
            FaultKind::StoreOutage | FaultKind::StoreSlow => one(STORE),
            FaultKind::Partition => topo.links.iter().map(|(a, b)| format!("{a}|{b}")).collect(),
            FaultKind::Crash => topo.services.clone(),
            FaultKind::ApiOutage | FaultKind::ApiSlow | FaultKind::ApiLostReply => {
                topo.front_doors()
            }
            FaultKind::FailPoint => reachable_boundaries(topo)
                .map(|b| b.name().to_string())
                .collect(),
            // Which hosts may crash is the scenario's other faults' business
            // (`FaultSpec::limit_crash_points`).
            FaultKind::CrashPoint => topo
                .services
                .iter()
                .flat_map(|h| host_boundaries(topo, h).map(move |b| crash_target(h, b)))
                .collect(),
        }
    }

    /// Window length range in milliseconds.
    fn duration_ms(self) -> (u64, u64) {
        match self {
            FaultKind::DbOutage | FaultKind::BrokerOutage | FaultKind::StoreOutage => (300, 4_000),
            FaultKind::DbSlow
            | FaultKind::BrokerSlow
            | FaultKind::StoreSlow
            | FaultKind::ApiSlow => (500, 5_000),
            FaultKind::ApiOutage => (300, 4_000),
            FaultKind::DbCrash | FaultKind::BrokerCrash => (200, 3_000),
            FaultKind::Partition => (300, 4_000),
            FaultKind::Crash => (50, 2_000),
            FaultKind::DbLostAck
            | FaultKind::BrokerLostAck
            | FaultKind::DuplicateDelivery
            | FaultKind::Reorder
            | FaultKind::CrashPoint
            | FaultKind::FailPoint
            | FaultKind::ApiLostReply => (1_000, 6_000),
        }
    }

    /// Probability range for kinds that fire per request.
    fn probability(self) -> Option<(f64, f64)> {
        match self {
            FaultKind::DbLostAck | FaultKind::BrokerLostAck | FaultKind::ApiLostReply => {
                Some((0.05, 0.4))
            }
            FaultKind::DuplicateDelivery => Some((0.05, 0.3)),
            FaultKind::Reorder => Some((0.1, 0.5)),
            FaultKind::CrashPoint => Some((0.1, 0.5)),
            FaultKind::FailPoint => Some((0.1, 0.4)),
            _ => None,
        }
    }

    /// The delay range of a slow window, per request.
    fn delay_ms(self) -> Option<(u64, u64)> {
        matches!(
            self,
            FaultKind::DbSlow | FaultKind::BrokerSlow | FaultKind::StoreSlow | FaultKind::ApiSlow
        )
        .then_some(SLOW_DELAY_MS)
    }

    fn is_outage(self) -> bool {
        matches!(
            self,
            FaultKind::DbOutage | FaultKind::BrokerOutage | FaultKind::StoreOutage
        )
    }
}

/// The boundaries a system with this topology can reach.
fn reachable_boundaries(topo: &Topology) -> impl Iterator<Item = Boundary> {
    let uses_store = topo.links.iter().any(|(a, b)| a == STORE || b == STORE);
    let has_slots = topo.dbs.iter().any(|d| !d.slots.is_empty());
    Boundary::ALL
        .into_iter()
        .filter(move |b| b.reachable(uses_store, has_slots))
}

/// The boundaries `host` can pass: object-store ones only if it talks to
/// the store, DB commits only if it talks to a DB, slot confirms only if it
/// talks to a DB with a slot. Crash points are drawn among these, so a
/// seed's few points land where the host can hit them.
fn host_boundaries<'a>(topo: &'a Topology, host: &'a str) -> impl Iterator<Item = Boundary> + 'a {
    let talks_to = move |server: &str| topo.links.iter().any(|(a, b)| a == host && b == server);
    let uses_store = talks_to(STORE);
    let has_slots = topo
        .dbs
        .iter()
        .any(|d| !d.slots.is_empty() && talks_to(&d.name));
    let uses_db = topo.dbs.iter().any(|d| talks_to(&d.name));
    Boundary::ALL.into_iter().filter(move |b| {
        b.reachable(uses_store, has_slots)
            && (uses_db || !matches!(b, Boundary::BeforeDbCommit | Boundary::AfterDbCommit))
    })
}

/// The delay a slow server adds to each request, drawn uniformly.
const SLOW_DELAY_MS: (u64, u64) = (50, 600);

/// A fault a scenario allows: its name as written, its kind, and the hosts
/// (or links) it may hit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultSpec {
    pub name: String,
    pub kind: FaultKind,
    pub targets: Vec<String>,
    /// On in every seed (the scenario's `always`), instead of on the swarm's
    /// coin: the fault the scenario is about.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub always: bool,
}

impl FaultSpec {
    /// Resolve a fault's name against a topology. The error says why it
    /// does not apply.
    pub fn resolve(name: &str, topo: &Topology) -> Result<FaultSpec, String> {
        let spec = |kind: FaultKind, targets: Vec<String>| FaultSpec {
            name: name.to_string(),
            kind,
            targets,
            always: false,
        };
        let found = if let Some(host) = name.strip_prefix("crash:") {
            if !topo.services.iter().any(|s| s == host) {
                return Err(format!(
                    "`{name}`: no service host `{host}`; the services are {}",
                    topo.services.join(", ")
                ));
            }
            spec(FaultKind::Crash, vec![host.to_string()])
        } else if let Some(group) = topo.crash_groups.iter().find(|g| g.name == name) {
            spec(FaultKind::Crash, group.hosts.clone())
        } else if let Some(kind) = FaultKind::from_name(name) {
            spec(kind, kind.targets(topo))
        } else {
            let mut known: Vec<String> = FaultKind::ALL.iter().map(|k| k.name().into()).collect();
            known.extend(topo.crash_groups.iter().map(|g| g.name.clone()));
            known.push("crash:<host>".into());
            return Err(format!(
                "unknown fault `{name}`, expected one of {}",
                known.join(", ")
            ));
        };
        if found.targets.is_empty() {
            return Err(format!(
                "fault `{name}` does not apply: the system as configured has nothing it can hit"
            ));
        }
        Ok(found)
    }

    /// Limit `crash-point` in `specs` to the hosts the other allowed faults
    /// may crash: a scenario that never crashes a host does not crash it at
    /// a boundary either. An error when none may crash.
    pub fn limit_crash_points(specs: &mut [FaultSpec]) -> Result<(), String> {
        let may_crash: Vec<String> = specs
            .iter()
            .filter(|s| s.kind == FaultKind::Crash)
            .flat_map(|s| s.targets.clone())
            .collect();
        for spec in specs.iter_mut().filter(|s| s.kind == FaultKind::CrashPoint) {
            spec.targets.retain(|t| {
                parse_target(t)
                    .is_some_and(|(host, _)| host.is_some_and(|h| may_crash.iter().any(|c| c == h)))
            });
            if spec.targets.is_empty() {
                return Err(format!(
                    "fault `{}` crashes only hosts another allowed fault may crash (`crash`, `crash:<host>` or a crash group), and none is allowed",
                    spec.name
                ));
            }
        }
        Ok(())
    }

    /// What this fault does, for `pitfall list` and `repro`.
    pub fn describe(&self, topo: &Topology) -> String {
        topo.crash_groups
            .iter()
            .find(|g| g.name == self.name)
            .map_or_else(|| self.kind.describe().to_string(), |g| g.describe.clone())
    }
}

/// One timed fault, with everything a mode needs to apply it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultWindow {
    /// The allowed fault this window comes from (`crash-workers`).
    pub fault: String,
    pub kind: FaultKind,
    /// A host, or `a|b` for a partition between two hosts.
    pub target: String,
    pub start_ms: u64,
    pub end_ms: u64,
    /// Per-request probability, for kinds that fire per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// For outages: drop traffic silently instead of refusing connections.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blackhole: bool,
    /// For slow kinds: each request is delayed by a uniform draw from this
    /// range of milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<(u64, u64)>,
    /// No longer drawn: real mode now lets a crashed consumer run on to its
    /// next offset commit for the whole window. Plans and reports written
    /// before carry it; it is read and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_ms: Option<u64>,
}

impl FaultWindow {
    /// The history event for this window starting or stopping.
    pub fn event(&self, start: bool) -> crate::history::Event {
        use crate::history::{Event, FaultAction};
        let detail = self.detail();
        Event::Fault {
            action: if start {
                FaultAction::Start
            } else {
                FaultAction::Stop
            },
            kind: self.fault.clone(),
            target: if detail.is_empty() {
                self.target.clone()
            } else {
                format!("{} ({detail})", self.target)
            },
        }
    }

    pub fn detail(&self) -> String {
        let mut s = String::new();
        if let Some(p) = self.probability {
            let _ = write!(s, "p={p:.2}");
        }
        if self.blackhole {
            s.push_str("blackhole");
        } else if self.kind.is_outage() {
            s.push_str("refuse");
        }
        s
    }
}

/// What one seed drew: which allowed faults are on, and the network latency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrawnConfig {
    pub enabled: Vec<String>,
    pub disabled: Vec<String>,
    pub latency_ms: (u64, u64),
}

/// The concrete plan: every window, sorted by start.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultPlan {
    pub windows: Vec<FaultWindow>,
}

impl FaultPlan {
    /// Every window's start and stop, in time order (a stop before a start
    /// at the same instant): `(at_ms, is_start, window)`.
    pub fn actions(&self) -> Vec<(u64, bool, &FaultWindow)> {
        let mut actions: Vec<(u64, bool, &FaultWindow)> = self
            .windows
            .iter()
            .flat_map(|w| [(w.start_ms, true, w), (w.end_ms, false, w)])
            .collect();
        actions.sort_by_key(|(at, start, _)| (*at, *start));
        actions
    }
}

/// Put allowed faults in the order the draw walks them: by kind, then name.
pub fn canonical_order(specs: &mut [FaultSpec]) {
    specs.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
}

/// Draw the configuration and plan of `seed` for the `allowed` faults (in
/// [`canonical_order`]) over a chaos phase of `chaos_ms`.
pub fn draw(seed: u64, allowed: &[FaultSpec], chaos_ms: u64) -> (DrawnConfig, FaultPlan) {
    let mut enabled = Vec::new();
    let mut disabled = Vec::new();
    for spec in allowed {
        // Each fault flips its own coin, so one fault never shifts another
        // (and pinning one on leaves the others' draws as they were).
        let on =
            spec.always || seed::rng(seed, &format!("faults/swarm/{}", spec.name)).random_bool(0.5);
        if on {
            enabled.push(spec);
        } else {
            disabled.push(spec.name.clone());
        }
    }
    let mut net = seed::rng(seed, "faults/latency");
    let min = net.random_range(0..=2);
    let latency_ms = (min, min + net.random_range(1..=20));

    let mut windows = Vec::new();
    for spec in &enabled {
        windows.extend(draw_windows(seed, spec, chaos_ms));
    }
    windows.sort_by(|a, b| {
        (a.start_ms, a.kind, &a.fault, &a.target).cmp(&(b.start_ms, b.kind, &b.fault, &b.target))
    });
    (
        DrawnConfig {
            enabled: enabled.iter().map(|s| s.name.clone()).collect(),
            disabled,
            latency_ms,
        },
        FaultPlan { windows },
    )
}

/// One fault's windows: one to four, never overlapping, walking forward
/// through the chaos phase.
fn draw_windows(seed: u64, spec: &FaultSpec, chaos_ms: u64) -> Vec<FaultWindow> {
    let kind = spec.kind;
    let mut rng = seed::rng(seed, &format!("faults/{}", spec.name));
    let (lo, hi) = kind.duration_ms();
    let count = rng.random_range(1..=4u64);
    let slot = chaos_ms / count;
    (0..count)
        .map(|i| {
            let len = rng.random_range(lo..=hi).min(slot.saturating_sub(1).max(1));
            let start = i * slot + rng.random_range(0..=slot.saturating_sub(len));
            let target = spec.targets[rng.random_range(0..spec.targets.len())].clone();
            let probability = kind.probability().map(|(a, b)| {
                let p: f64 = rng.random_range(a..=b);
                (p * 100.0).round() / 100.0
            });
            let blackhole = matches!(kind, FaultKind::DbOutage | FaultKind::BrokerOutage)
                && rng.random_bool(0.5);
            FaultWindow {
                fault: spec.name.clone(),
                kind,
                target,
                start_ms: start,
                end_ms: (start + len).min(chaos_ms),
                probability,
                blackhole,
                delay_ms: kind.delay_ms(),
                grace_ms: None,
            }
        })
        .collect()
}

/// The plan as a human-readable timeline.
pub fn render_timeline(plan: &FaultPlan) -> String {
    if plan.windows.is_empty() {
        return "  (no faults)\n".into();
    }
    let mut out = String::new();
    for w in &plan.windows {
        let _ = writeln!(
            out,
            "  {:>8.3}s – {:>8.3}s  {:<18} {:<28} {}",
            w.start_ms as f64 / 1000.0,
            w.end_ms as f64 / 1000.0,
            w.fault,
            w.target,
            w.detail()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::{CrashGroup, DbSpec};

    fn topo() -> Topology {
        Topology {
            dbs: vec![DbSpec {
                name: "db".into(),
                ..DbSpec::default()
            }],
            services: vec!["api".into(), "relay".into(), "worker-1".into()],
            clients: vec!["client-1".into()],
            links: vec![
                ("api".into(), "db".into()),
                ("relay".into(), BROKER.into()),
                ("client-1".into(), "api".into()),
            ],
            crash_groups: vec![CrashGroup {
                name: "crash-workers".into(),
                describe: "a worker crashes".into(),
                hosts: vec!["worker-1".into()],
            }],
            ..Topology::default()
        }
    }

    fn every_fault(topo: &Topology) -> Vec<FaultSpec> {
        let mut names: Vec<String> = FaultKind::ALL.iter().map(|k| k.name().into()).collect();
        names.extend(["crash-workers".into(), "crash:relay".into()]);
        let mut specs: Vec<FaultSpec> = names
            .iter()
            .map(|n| FaultSpec::resolve(n, topo).unwrap())
            .collect();
        canonical_order(&mut specs);
        specs
    }

    #[test]
    fn the_same_seed_draws_the_same_plan() {
        let specs = every_fault(&topo());
        assert_eq!(draw(11, &specs, 20_000), draw(11, &specs, 20_000));
        assert_ne!(draw(11, &specs, 20_000), draw(12, &specs, 20_000));
    }

    #[test]
    fn crash_points_target_only_boundaries_the_host_can_pass() {
        let mut t = topo();
        t.links.push(("relay".into(), STORE.into()));
        let targets = FaultSpec::resolve("crash-point", &t).unwrap().targets;
        // The API talks to a DB: commits, not objects.
        assert!(targets.contains(&"api@before-db-commit".to_string()));
        assert!(!targets.contains(&"api@before-object-put".to_string()));
        // The relay talks to the store, not to a DB.
        assert!(targets.contains(&"relay@after-object-delete".to_string()));
        assert!(!targets.contains(&"relay@after-db-commit".to_string()));
        // No DB here has a slot: no slot boundaries at all.
        assert!(!targets.iter().any(|t| t.contains("slot-confirm")));
    }

    #[test]
    fn crash_names_resolve_to_hosts() {
        let t = topo();
        assert_eq!(FaultSpec::resolve("crash", &t).unwrap().targets, t.services);
        assert_eq!(
            FaultSpec::resolve("crash:relay", &t).unwrap().targets,
            ["relay"]
        );
        assert_eq!(
            FaultSpec::resolve("crash-workers", &t).unwrap().targets,
            ["worker-1"]
        );
        let err = FaultSpec::resolve("crash:nope", &t).unwrap_err();
        assert!(err.contains("no service host `nope`"), "{err}");
        let err = FaultSpec::resolve("meteor", &t).unwrap_err();
        assert!(err.starts_with("unknown fault `meteor`"), "{err}");
    }

    #[test]
    fn a_kind_with_nothing_to_hit_does_not_apply() {
        let t = Topology {
            links: vec![],
            ..topo()
        };
        let err = FaultSpec::resolve("partition", &t).unwrap_err();
        assert!(err.contains("does not apply"), "{err}");
    }

    #[test]
    fn adding_a_fault_does_not_reshuffle_the_others() {
        let t = topo();
        let all = every_fault(&t);
        let without: Vec<FaultSpec> = all
            .iter()
            .filter(|s| s.name != "reorder")
            .cloned()
            .collect();
        for seed in 0..20 {
            let (_, a) = draw(seed, &without, 20_000);
            let (_, b) = draw(seed, &all, 20_000);
            let b: Vec<_> = b
                .windows
                .into_iter()
                .filter(|w| w.fault != "reorder")
                .collect();
            assert_eq!(a.windows, b);
        }
    }

    #[test]
    fn pinning_a_fault_on_leaves_the_others_as_drawn() {
        let free = every_fault(&topo());
        let mut pinned = free.clone();
        pinned
            .iter_mut()
            .filter(|s| s.name == "reorder")
            .for_each(|s| s.always = true);
        let mut was_off = 0;
        for seed in 0..40 {
            let (free_config, free_plan) = draw(seed, &free, 20_000);
            let (config, plan) = draw(seed, &pinned, 20_000);
            assert!(config.enabled.contains(&"reorder".to_string()));
            was_off += usize::from(free_config.disabled.contains(&"reorder".to_string()));
            let others = |p: FaultPlan| -> Vec<FaultWindow> {
                p.windows
                    .into_iter()
                    .filter(|w| w.fault != "reorder")
                    .collect()
            };
            assert_eq!(others(plan), others(free_plan));
        }
        assert!(
            was_off > 0,
            "the swarm turned reorder off in no seed; the test proves nothing"
        );
    }

    #[test]
    fn windows_carry_their_parameters() {
        let t = topo();
        let specs = every_fault(&t);
        for seed in 0..30 {
            for w in draw(seed, &specs, 20_000).1.windows {
                assert_eq!(w.delay_ms.is_some(), w.kind.delay_ms().is_some(), "{w:?}");
                assert_eq!(w.grace_ms, None, "{w:?}");
                assert_eq!(w.probability.is_some(), w.kind.probability().is_some());
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn windows_stay_in_the_chaos_phase_and_never_overlap_per_fault(seed: u64, chaos in 2_000u64..60_000) {
            let specs = every_fault(&topo());
            let (_, plan) = draw(seed, &specs, chaos);
            for w in &plan.windows {
                proptest::prop_assert!(w.start_ms < w.end_ms && w.end_ms <= chaos, "{w:?}");
            }
            for spec in &specs {
                let mut ws: Vec<_> = plan.windows.iter().filter(|w| w.fault == spec.name).collect();
                ws.sort_by_key(|w| w.start_ms);
                for pair in ws.windows(2) {
                    proptest::prop_assert!(pair[0].end_ms <= pair[1].start_ms, "{pair:?}");
                }
            }
        }
    }
}
