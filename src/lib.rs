//! pitfall: a deterministic simulation and chaos-testing harness for
//! event-driven systems (Kafka, CDC, microservices).
//!
//! This crate is the public API. To put a system of your own under the
//! harness, describe it with [`harness::system::System`] (its hosts, how
//! each starts from the infrastructure it is handed, its clients, its drain
//! probes and its invariants), write its services against [`ports`] (and,
//! where they fit, the [`blocks`]), and call [`cli::main`] from your
//! crate's `main` with your system registered: you get `run`, `repro`,
//! `trace`, `check` and `list`, in simulation and against real Kafka and
//! Postgres. `examples/bank` is a complete example.

pub mod allocator;
pub mod cli;

/// Event-driven building blocks over the ports.
pub use pitfall_blocks as blocks;
/// The harness: the `System` API, scenarios, fault plans, history,
/// checkers, sweep and report.
pub use pitfall_harness as harness;
/// The ports a service is written against.
pub use pitfall_ports as ports;
/// The simulation, for running seeds from a library (tests of your own).
pub use pitfall_sim as sim;
