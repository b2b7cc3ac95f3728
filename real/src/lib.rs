//! Real mode: the same scenarios, system code, fault plans, history format,
//! checkers and driver as the simulation, with the ports served by a real
//! Kafka-compatible broker (rdkafka; Apache Kafka by default), a real
//! Postgres (sqlx; CDC by logical decoding) or MariaDB/MySQL (sqlx; CDC from
//! the binlog through mysql_async) and an object store (object_store).
//! Nothing here knows turmoil or any particular system.
//!
//! - [`names`]: the run-prefixed physical names of databases, tables,
//!   topics, slots;
//! - [`dbserver`]: the DB server behind the logical DBs, by URL scheme;
//! - [`postgres`], [`mysql`] with [`binlog`], [`kafka`], [`store`]: the
//!   adapters;
//! - [`proxy`]: the TCP fault proxy that carries network faults;
//! - [`hosts`]: the env port, the hosts' front doors, crash-at-commit;
//! - [`infra`]: what a host is handed;
//! - [`runner`]: the shared connections and one seed; [`run`] its
//!   resources; [`live`] the driver's world while it runs; [`nemesis`] how
//!   fault windows apply;
//! - [`sweep`]: seeds one after another, with the report's extras.

pub mod binlog;
pub mod dbserver;
pub mod hosts;
pub mod infra;
pub mod kafka;
pub mod kafka_txn;
pub mod live;
pub mod mysql;
pub mod names;
pub mod nemesis;
pub mod postgres;
pub mod proxy;
pub mod run;
pub mod runner;
pub mod store;
pub mod sweep;
