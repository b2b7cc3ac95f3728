//! Runs one seed in the simulation: draw the fault configuration and plan,
//! build the world, drive it through chaos, heal and drain with the
//! harness's driver, and check the history.

use crate::world::{SimWorld, StepStats, Stepping};
use pitfall_harness::checkers::check_all;
use pitfall_harness::driver::drive;
use pitfall_harness::history::{Event, History};
use pitfall_harness::scenario::Scenario;
use pitfall_harness::sweep::{self_check, Limits, SeedRun, SeedStatus};
use std::time::Duration;

/// Simulated time past the drain bound before turmoil gives up on a seed.
const SIMULATION_SLACK_MS: u64 = 60_000;

/// Run one seed to completion. Panics inside the simulation propagate; the
/// sweep isolates them.
pub fn run_seed(scenario: &Scenario, seed: u64, limits: Limits) -> SeedRun {
    run_seed_measured(scenario, seed, limits).0
}

/// [`run_seed`], with what stepping the seed cost (for the benchmark).
pub fn run_seed_measured(scenario: &Scenario, seed: u64, limits: Limits) -> (SeedRun, StepStats) {
    run_seed_stepping(scenario, seed, limits, Stepping::default())
}

/// [`run_seed_measured`], stepping hosts as `stepping` says: a seed's
/// history is the same either way (checked in `sim/tests/stepping.rs`).
pub fn run_seed_stepping(
    scenario: &Scenario,
    seed: u64,
    limits: Limits,
    stepping: Stepping,
) -> (SeedRun, StepStats) {
    let (config, plan) = scenario.plan(seed);
    let time_limit = Duration::from_millis(
        scenario.run.chaos_ms() + scenario.run.drain_ms() + SIMULATION_SLACK_MS,
    );
    let history = History::new();
    history.record(Event::Run {
        scenario: scenario.name.clone(),
        seed,
        mode: "sim".into(),
        system: scenario.system.name().into(),
        variants: scenario.variants(),
    });
    let mut world = SimWorld::build(scenario, seed, &config, time_limit, history, limits);
    world.set_stepping(stepping);
    // The driver's futures never wait on anything outside the simulation,
    // which it steps itself: a plain executor runs it to completion.
    let status = match futures_executor::block_on(drive(&mut world, &plan, &scenario.run)) {
        Ok(()) => SeedStatus::Completed,
        Err(reason) => SeedStatus::Failed { reason },
    };
    let sim_ms = world.sim.elapsed().as_millis() as u64;
    let stats = world.step_stats();
    let history = world.history.entries();
    let status = self_check(status, &history);
    let violations = match status {
        SeedStatus::Completed => check_all(&scenario.invariants(), &history),
        SeedStatus::Failed { .. } => Vec::new(),
    };
    let run = SeedRun {
        seed,
        status,
        config,
        plan,
        history,
        violations,
        sim_ms,
    };
    (run, stats)
}
