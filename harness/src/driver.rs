//! The one driver of a seed, for both modes: chaos (the workload runs while
//! the fault plan's windows start and stop), heal (every fault stops,
//! crashed hosts restart), then drain (the system must settle within the
//! bound). A mode supplies a [`World`]: its clock, how it applies a fault
//! window (its nemesis), and how it evaluates the system's drain probes.

use crate::faults::{FaultPlan, FaultWindow};
use crate::history::{Event, History};
use crate::scenario::RunParams;
use std::collections::BTreeSet;

/// How long the system must stay drained before the drain phase ends.
pub const SETTLE_MS: u64 = 2_000;
/// How often the drain phase asks what is still pending.
pub const DRAIN_CHECK_MS: u64 = 100;

/// What became of a fault window a world was asked to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// It took effect now.
    Now,
    /// It takes effect later; the world records it when it does (real mode
    /// crashes a consumer at its next offset commit).
    Later,
    /// This mode cannot apply it (the report says why).
    Skipped,
}

/// One mode's run of one seed, as the driver sees it.
#[allow(async_fn_in_trait)] // implemented in this workspace only; each mode's futures are checked where they are spawned
pub trait World {
    /// Milliseconds since the run started (simulated, or real).
    fn now_ms(&self) -> u64;
    fn history(&self) -> &History;
    /// Let the system run until `at_ms`.
    async fn advance_to(&mut self, at_ms: u64) -> Result<(), String>;
    /// Start or stop one fault window (the mode's nemesis).
    fn apply(&mut self, window: &FaultWindow, start: bool) -> Applied;
    /// Stop every fault and restart every crashed host.
    fn heal(&mut self);
    /// What keeps the system from being drained, if anything: the
    /// system's probes, and clients still running.
    async fn pending(&mut self) -> Vec<String>;
}

/// Drive one seed through chaos, heal and drain. An error fails the seed
/// (a simulation error, a hang); violations are the checkers' business.
pub async fn drive<W: World>(
    world: &mut W,
    plan: &FaultPlan,
    run: &RunParams,
) -> Result<(), String> {
    let chaos_ms = run.chaos_ms();
    record(
        world,
        Event::Phase {
            phase: "chaos".into(),
        },
    );
    let mut started: BTreeSet<usize> = BTreeSet::new();
    let actions = plan.actions();
    for &(at, start, window) in actions
        .iter()
        .filter(|(at, start, _)| *at < chaos_ms || !start)
    {
        if at < chaos_ms {
            world.advance_to(at).await?;
        } else if world.now_ms() < chaos_ms {
            world.advance_to(chaos_ms).await?;
        }
        apply(world, window, start, &mut started, plan);
    }
    world.advance_to(chaos_ms).await?;
    world.heal();
    record(
        world,
        Event::Phase {
            phase: "heal".into(),
        },
    );
    drain(world, chaos_ms + run.drain_ms()).await
}

/// Apply one window and record it: a start when it took effect now, a stop
/// when its start was recorded or left to the world.
fn apply<W: World>(
    world: &mut W,
    window: &FaultWindow,
    start: bool,
    started: &mut BTreeSet<usize>,
    plan: &FaultPlan,
) {
    let index = plan
        .windows
        .iter()
        .position(|w| std::ptr::eq(w, window))
        .expect("the window is the plan's");
    let applied = world.apply(window, start);
    if start {
        if applied != Applied::Skipped {
            started.insert(index);
        }
        if applied == Applied::Now {
            record(world, window.event(true));
        }
    } else if started.remove(&index) {
        record(world, window.event(false));
    }
}

async fn drain<W: World>(world: &mut W, deadline_ms: u64) -> Result<(), String> {
    let mut settled_since: Option<u64> = None;
    let mut pending = world.pending().await;
    while world.now_ms() < deadline_ms {
        let next = (world.now_ms() + DRAIN_CHECK_MS).min(deadline_ms);
        world.advance_to(next).await?;
        pending = world.pending().await;
        if pending.is_empty() {
            let now = world.now_ms();
            let since = *settled_since.get_or_insert(now);
            if now - since >= SETTLE_MS {
                break;
            }
        } else {
            settled_since = None;
        }
    }
    record(
        world,
        Event::Drain {
            converged: pending.is_empty(),
            pending,
        },
    );
    Ok(())
}

fn record<W: World>(world: &W, event: Event) {
    world.history().set_now_ms(world.now_ms());
    world.history().record(event);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::FaultKind;
    use crate::history::{Entry, FaultAction};

    /// A world whose clock jumps to wherever it is asked to go, whose
    /// nemesis skips crashes and defers partitions, and which drains once
    /// `drained_at_ms` has passed.
    struct Toy {
        now_ms: u64,
        history: History,
        applied: Vec<(String, bool)>,
        healed_at_ms: Option<u64>,
        drained_at_ms: u64,
    }

    impl World for Toy {
        fn now_ms(&self) -> u64 {
            self.now_ms
        }
        fn history(&self) -> &History {
            &self.history
        }
        async fn advance_to(&mut self, at_ms: u64) -> Result<(), String> {
            self.now_ms = self.now_ms.max(at_ms);
            Ok(())
        }
        fn apply(&mut self, w: &FaultWindow, start: bool) -> Applied {
            self.applied.push((w.fault.clone(), start));
            match w.kind {
                FaultKind::Crash => Applied::Skipped,
                FaultKind::Partition => Applied::Later,
                _ => Applied::Now,
            }
        }
        fn heal(&mut self) {
            self.healed_at_ms = Some(self.now_ms);
        }
        async fn pending(&mut self) -> Vec<String> {
            if self.now_ms < self.drained_at_ms {
                vec!["lag".into()]
            } else {
                Vec::new()
            }
        }
    }

    fn window(fault: &str, kind: FaultKind, start_ms: u64, end_ms: u64) -> FaultWindow {
        FaultWindow {
            fault: fault.into(),
            kind,
            target: "x".into(),
            start_ms,
            end_ms,
            probability: None,
            blackhole: false,
            delay_ms: None,
            grace_ms: None,
        }
    }

    fn toy(drained_at_ms: u64) -> Toy {
        Toy {
            now_ms: 0,
            history: History::new(),
            applied: Vec::new(),
            healed_at_ms: None,
            drained_at_ms,
        }
    }

    fn run() -> RunParams {
        RunParams {
            chaos_seconds: 10.0,
            drain_seconds: 5.0,
            ..RunParams::default()
        }
    }

    fn faults(entries: &[Entry]) -> Vec<(u64, String, FaultAction)> {
        entries
            .iter()
            .filter_map(|e| match &e.event {
                Event::Fault { action, kind, .. } => Some((e.t, kind.clone(), *action)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn windows_start_and_stop_on_time_and_only_what_happened_is_recorded() {
        let plan = FaultPlan {
            windows: vec![
                window("broker-outage", FaultKind::BrokerOutage, 1_000, 3_000),
                window("crash-x", FaultKind::Crash, 2_000, 2_500),
                window("partition", FaultKind::Partition, 4_000, 10_000),
            ],
        };
        let mut w = toy(12_000);
        futures_executor::block_on(drive(&mut w, &plan, &run())).unwrap();
        assert_eq!(w.applied.len(), 6, "{:?}", w.applied);
        assert_eq!(w.healed_at_ms, Some(10_000));
        assert_eq!(
            faults(&w.history.entries()),
            [
                (1_000, "broker-outage".into(), FaultAction::Start),
                (3_000, "broker-outage".into(), FaultAction::Stop),
                // The partition's start is the world's to record; its stop is recorded.
                (10_000, "partition".into(), FaultAction::Stop),
            ]
        );
    }

    #[test]
    fn the_drain_ends_once_settled_or_at_the_bound() {
        let mut w = toy(12_000);
        futures_executor::block_on(drive(&mut w, &FaultPlan::default(), &run())).unwrap();
        let last = w.history.entries().pop().unwrap();
        assert_eq!(
            last.event,
            Event::Drain {
                converged: true,
                pending: vec![]
            }
        );
        assert_eq!(last.t, 12_000 + SETTLE_MS);

        let mut w = toy(u64::MAX);
        futures_executor::block_on(drive(&mut w, &FaultPlan::default(), &run())).unwrap();
        let last = w.history.entries().pop().unwrap();
        assert_eq!(
            last.event,
            Event::Drain {
                converged: false,
                pending: vec!["lag".into()]
            }
        );
        assert_eq!(last.t, 15_000);
    }
}
