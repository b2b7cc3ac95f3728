//! The reference system under test: the e-commerce flow of the article
//! (payments → inventory, orders, archive), written only against the ports
//! (`pitfall-ports`) and the building blocks (`pitfall-blocks`), and
//! described to the harness through its public `System` API ([`Shop`]).
//! Nothing here knows whether it runs inside the turmoil simulation or
//! against a real Postgres and Kafka; the modes decide that.
//!
//! - [`services`]: the payments, inventory, orders and archive services.
//! - [`connectors`]: its CDC connectors.
//! - [`events`], [`schema`]: payloads, tables and topics.
//! - [`variants`]: the switchable naive/remedy variants of each pitfall.
//! - [`config`]: its sections of a scenario file.
//! - [`topology`], [`wiring`], [`workload`]: its hosts, how each starts,
//!   and the shoppers.
//! - [`checkers`]: its invariants.

pub mod checkers;
pub mod config;
pub mod connectors;
pub mod events;
pub mod schema;
pub mod services;
pub mod topology;
pub mod variants;
pub mod wiring;
pub mod workload;

use pitfall_harness::checkers::{Anomaly, Invariant};
use pitfall_harness::history::Entry;
use pitfall_harness::scenario::{InputError, ScenarioText};
use pitfall_harness::system::{Component, Config, Figures, Latencies, System};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The reference e-commerce system, as the harness sees it.
pub struct Shop;

impl System for Shop {
    fn name(&self) -> &'static str {
        "shop"
    }

    fn describe(&self) -> &'static str {
        "the article's e-commerce flow: payments → inventory reservation, with an orders view and an invoice archive"
    }

    fn sections(&self) -> &'static [&'static str] {
        config::SECTIONS
    }

    fn configure(&self, scenario: &ScenarioText<'_>) -> Result<Arc<dyn Config>, InputError> {
        Ok(Arc::new(config::parse(scenario)?))
    }

    fn invariants(&self) -> Vec<Invariant> {
        checkers::invariants()
    }

    fn queue_allowed(&self, variants: &BTreeMap<String, String>) -> Vec<Anomaly> {
        let producer = variants.get("producer").map_or("", String::as_str);
        checkers::allowed(producer).to_vec()
    }

    fn components(&self) -> Vec<Component> {
        variants::components()
    }

    fn figures(&self, history: &[Entry]) -> Option<Value> {
        checkers::payload::figures(history)
            .map(|f| serde_json::to_value(f).expect("figures serialize"))
    }

    fn total_figures(&self, seeds: &[&Value]) -> Option<Figures> {
        checkers::total_payload_figures(seeds)
    }

    fn latencies(&self, history: &[Entry]) -> Option<Latencies> {
        Some(checkers::payment_latencies(history))
    }
}
