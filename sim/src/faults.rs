//! Fault kinds, the per-seed swarm draw and the concrete fault plan.
//!
//! Each seed enables a random subset of the kinds a scenario allows (swarm
//! testing), then draws timed windows for each enabled kind from that kind's
//! own sub-seed, so adding a kind never reshuffles the others. The drawn
//! configuration and the plan are plain data: recorded in the report and
//! printed by `repro`.

use crate::seed;
use crate::topology::Topology;
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
    CrashPayments,
    CrashCdc,
    CrashRecovery,
    CrashInventory,
    DuplicateDelivery,
    Reorder,
}

impl FaultKind {
    pub const ALL: [FaultKind; 17] = [
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
        FaultKind::CrashPayments,
        FaultKind::CrashCdc,
        FaultKind::CrashRecovery,
        FaultKind::CrashInventory,
        FaultKind::DuplicateDelivery,
        FaultKind::Reorder,
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
            FaultKind::CrashPayments => "crash-payments",
            FaultKind::CrashCdc => "crash-cdc",
            FaultKind::CrashRecovery => "crash-recovery",
            FaultKind::CrashInventory => "crash-inventory",
            FaultKind::DuplicateDelivery => "duplicate-delivery",
            FaultKind::Reorder => "reorder",
        }
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
                "the network between a service and a server (or a shopper) drops everything"
            }
            FaultKind::CrashPayments => "the payments service crashes and restarts",
            FaultKind::CrashCdc => "the CDC connector crashes and restarts",
            FaultKind::CrashRecovery => "the recovery service crashes and restarts",
            FaultKind::CrashInventory => {
                "a consumer (an inventory member, the archive, or an orders host) crashes and restarts"
            }
            FaultKind::DuplicateDelivery => {
                "the broker serves fetches again from the committed offset"
            }
            FaultKind::Reorder => {
                "the broker holds then refuses produces, so in-flight retries overtake"
            }
        }
    }

    /// Hosts this kind can target in a topology; empty when the kind does not
    /// apply (e.g. `crash-cdc` without a CDC connector).
    pub fn targets(self, topo: &Topology) -> Vec<String> {
        use crate::topology as t;
        let one = |h: &str| vec![h.to_string()];
        match self {
            FaultKind::DbOutage | FaultKind::DbSlow | FaultKind::DbCrash | FaultKind::DbLostAck => {
                topo.dbs()
            }
            FaultKind::BrokerOutage
            | FaultKind::BrokerSlow
            | FaultKind::BrokerCrash
            | FaultKind::BrokerLostAck
            | FaultKind::DuplicateDelivery
            | FaultKind::Reorder => one(t::BROKER),
            FaultKind::StoreOutage | FaultKind::StoreSlow => one(t::STORE),
            FaultKind::Partition => topo
                .links()
                .into_iter()
                .map(|(a, b)| format!("{a}|{b}"))
                .collect(),
            FaultKind::CrashPayments => one(t::PAYMENTS),
            FaultKind::CrashCdc => topo.cdc().map(|h| vec![h.to_string()]).unwrap_or_default(),
            FaultKind::CrashRecovery => topo
                .recovery()
                .map(|h| vec![h.to_string()])
                .unwrap_or_default(),
            FaultKind::CrashInventory => topo.consumer_hosts(),
        }
    }

    /// Window length range in milliseconds.
    fn duration_ms(self) -> (u64, u64) {
        match self {
            FaultKind::DbOutage | FaultKind::BrokerOutage | FaultKind::StoreOutage => (300, 4_000),
            FaultKind::DbSlow | FaultKind::BrokerSlow | FaultKind::StoreSlow => (500, 5_000),
            FaultKind::DbCrash | FaultKind::BrokerCrash => (200, 3_000),
            FaultKind::Partition => (300, 4_000),
            FaultKind::CrashPayments
            | FaultKind::CrashCdc
            | FaultKind::CrashRecovery
            | FaultKind::CrashInventory => (50, 2_000),
            FaultKind::DbLostAck
            | FaultKind::BrokerLostAck
            | FaultKind::DuplicateDelivery
            | FaultKind::Reorder => (1_000, 6_000),
        }
    }

    /// Probability range for kinds that fire per request.
    fn probability(self) -> Option<(f64, f64)> {
        match self {
            FaultKind::DbLostAck | FaultKind::BrokerLostAck => Some((0.05, 0.4)),
            FaultKind::DuplicateDelivery => Some((0.05, 0.3)),
            FaultKind::Reorder => Some((0.1, 0.5)),
            _ => None,
        }
    }
}

/// One timed fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultWindow {
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
            kind: self.kind.name().into(),
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
        } else if matches!(
            self.kind,
            FaultKind::DbOutage | FaultKind::BrokerOutage | FaultKind::StoreOutage
        ) {
            s.push_str("refuse");
        }
        s
    }
}

/// What one seed drew: which allowed kinds are on, and the network latency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrawnConfig {
    pub enabled: Vec<FaultKind>,
    pub disabled: Vec<FaultKind>,
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

/// Draw the configuration and plan of `seed` for the `allowed` kinds over a
/// chaos phase of `chaos_ms`.
pub fn draw(
    seed: u64,
    allowed: &[FaultKind],
    topo: &Topology,
    chaos_ms: u64,
) -> (DrawnConfig, FaultPlan) {
    let mut enabled = Vec::new();
    let mut disabled = Vec::new();
    for kind in FaultKind::ALL {
        if !allowed.contains(&kind) {
            continue;
        }
        // Each kind flips its own coin, so one kind never shifts another.
        let on = seed::rng(seed, &format!("faults/swarm/{}", kind.name())).random_bool(0.5);
        if on && !kind.targets(topo).is_empty() {
            enabled.push(kind);
        } else {
            disabled.push(kind);
        }
    }
    let mut net = seed::rng(seed, "faults/latency");
    let min = net.random_range(0..=2);
    let latency_ms = (min, min + net.random_range(1..=20));

    let mut windows = Vec::new();
    for &kind in &enabled {
        let mut rng = seed::rng(seed, &format!("faults/{}", kind.name()));
        let targets = kind.targets(topo);
        let (lo, hi) = kind.duration_ms();
        let count = rng.random_range(1..=4u64);
        // Windows of one kind never overlap: walk forward through the phase.
        let slot = chaos_ms / count;
        for i in 0..count {
            let len = rng.random_range(lo..=hi).min(slot.saturating_sub(1).max(1));
            let start = i * slot + rng.random_range(0..=slot.saturating_sub(len));
            let target = targets[rng.random_range(0..targets.len())].clone();
            let probability = kind.probability().map(|(a, b)| {
                let p: f64 = rng.random_range(a..=b);
                (p * 100.0).round() / 100.0
            });
            let blackhole = matches!(kind, FaultKind::DbOutage | FaultKind::BrokerOutage)
                && rng.random_bool(0.5);
            windows.push(FaultWindow {
                kind,
                target,
                start_ms: start,
                end_ms: (start + len).min(chaos_ms),
                probability,
                blackhole,
            });
        }
    }
    windows.sort_by(|a, b| (a.start_ms, a.kind, &a.target).cmp(&(b.start_ms, b.kind, &b.target)));
    (
        DrawnConfig {
            enabled,
            disabled,
            latency_ms,
        },
        FaultPlan { windows },
    )
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
            w.kind.name(),
            w.target,
            w.detail()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitfall_system::variants::Publish;

    fn topo() -> Topology {
        Topology::new(Publish::Cdc, 2, 3)
    }

    #[test]
    fn the_same_seed_draws_the_same_plan() {
        let a = draw(11, &FaultKind::ALL, &topo(), 20_000);
        let b = draw(11, &FaultKind::ALL, &topo(), 20_000);
        assert_eq!(a, b);
    }

    #[test]
    fn inapplicable_kinds_are_never_enabled() {
        let t = Topology::new(Publish::DualWrite, 2, 3);
        for seed in 0..50 {
            let (cfg, plan) = draw(seed, &FaultKind::ALL, &t, 20_000);
            assert!(!cfg.enabled.contains(&FaultKind::CrashCdc));
            assert!(!cfg.enabled.contains(&FaultKind::CrashRecovery));
            assert!(plan.windows.iter().all(|w| cfg.enabled.contains(&w.kind)));
        }
    }

    #[test]
    fn adding_a_kind_does_not_reshuffle_the_others() {
        let without: Vec<FaultKind> = FaultKind::ALL
            .into_iter()
            .filter(|k| *k != FaultKind::Reorder)
            .collect();
        for seed in 0..20 {
            let (_, a) = draw(seed, &without, &topo(), 20_000);
            let (_, b) = draw(seed, &FaultKind::ALL, &topo(), 20_000);
            let b: Vec<_> = b
                .windows
                .into_iter()
                .filter(|w| w.kind != FaultKind::Reorder)
                .collect();
            assert_eq!(a.windows, b);
        }
    }

    proptest::proptest! {
        #[test]
        fn windows_stay_in_the_chaos_phase_and_never_overlap_per_kind(seed: u64, chaos in 2_000u64..60_000) {
            let (_, plan) = draw(seed, &FaultKind::ALL, &topo(), chaos);
            for w in &plan.windows {
                proptest::prop_assert!(w.start_ms < w.end_ms && w.end_ms <= chaos, "{w:?}");
            }
            for kind in FaultKind::ALL {
                let mut ws: Vec<_> = plan.windows.iter().filter(|w| w.kind == kind).collect();
                ws.sort_by_key(|w| w.start_ms);
                for pair in ws.windows(2) {
                    proptest::prop_assert!(pair[0].end_ms <= pair[1].start_ms, "{pair:?}");
                }
            }
        }
    }
}
