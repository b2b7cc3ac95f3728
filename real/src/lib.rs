//! Real mode: the same scenarios, service code, fault plans, history format
//! and checkers as the simulation, with the ports served by a real
//! Kafka-compatible broker (rdkafka), a real Postgres (sqlx; CDC by logical
//! decoding) and an object store (object_store).
//!
//! - [`names`]: the run-prefixed physical names of tables, topics, slots;
//! - [`postgres`], [`kafka`], [`store`]: the adapters;
//! - [`proxy`]: the TCP fault proxy that carries network faults;
//! - [`hosts`]: the env port, the payments front door, crash-at-commit;
//! - [`runner`]: one seed against the real services;
//! - [`sweep`]: seeds one after another, with the report's extras.

pub mod hosts;
pub mod kafka;
pub mod names;
pub mod postgres;
pub mod proxy;
pub mod runner;
pub mod store;
pub mod sweep;
