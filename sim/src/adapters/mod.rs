//! Simulated adapters: the ports of `pitfall-system` implemented over turmoil
//! TCP against the simulated servers. They are what a service host is handed.

pub mod broker;
pub mod db;
pub mod env;
pub mod rpc;
pub mod store;

use std::time::Duration;

/// How long a client waits for one request before treating the server as
/// unreachable.
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(1_000);
