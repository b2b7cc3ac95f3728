//! The deterministic world for pitfall: the turmoil simulation of the
//! reference system, the simulated servers and adapters, the fault model, the
//! history, the invariant checkers, and the runner that ties one seed — and a
//! sweep of many — together.
//!
//! One seed flows: [`scenario`] → [`faults::draw`] → [`world::World::build`]
//! → [`runner::run_seed`] (chaos, heal, drain) → [`history`] →
//! [`checkers::check_all`] → [`sweep`] aggregates → [`report`].

pub mod adapters;
pub mod checkers;
pub mod contract;
pub mod faults;
pub mod history;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod seed;
pub mod servers;
pub mod sweep;
pub mod topology;
pub mod wire;
pub mod workload;
pub mod world;
