//! The deterministic world: the turmoil simulation of any system described
//! through the harness's `System` API. Simulated servers stand in for its
//! DBs (with change feeds), the broker and the object store; simulated
//! adapters hand its hosts the ports over turmoil TCP; the nemesis applies
//! fault windows to the simulated network, servers and hosts.
//!
//! One seed: [`runner::run_seed`] builds a [`world::SimWorld`] and drives it
//! with the harness's driver.

pub mod adapters;
pub mod echo;
pub mod infra;
pub mod nemesis;
pub mod runner;
pub mod servers;
pub mod wire;
pub mod world;
