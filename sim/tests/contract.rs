//! The contract suite against the simulated adapters and servers, each case
//! in its own turmoil world.

use async_trait::async_trait;
use pitfall_harness::contract::{self, Fixture, DB, SLOT, TOPICS};
use pitfall_harness::history::History;
use pitfall_harness::seed;
use pitfall_harness::system::BROKER;
use pitfall_ports::{Broker, ChangeFeed, Database};
use pitfall_sim::adapters::broker::SimBroker;
use pitfall_sim::adapters::db::SimDb;
use pitfall_sim::servers::broker::{BrokerServer, BrokerState};
use pitfall_sim::servers::db::{DbServer, DbState};
use pitfall_sim::servers::{ServerFaults, SharedFaults};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct SimFixture {
    broker_faults: SharedFaults,
    history: History,
}

#[async_trait]
impl Fixture for SimFixture {
    fn db(&self) -> Arc<dyn Database> {
        Arc::new(SimDb::new(DB))
    }

    fn feed(&self) -> Arc<dyn ChangeFeed> {
        Arc::new(SimDb::new(DB))
    }

    fn broker(&self) -> Arc<dyn Broker> {
        Arc::new(SimBroker::new(BROKER, "tester", self.history.clone()))
    }

    async fn lose_next_reply(&self) {
        self.broker_faults.lock().unwrap().lose_next_ack = true;
    }

    async fn slow_broker(&self, delay_ms: Option<u64>) {
        self.broker_faults.lock().unwrap().slow_ms = delay_ms.map(|d| (d, d));
    }

    async fn broker_down(&self, down: bool) {
        self.broker_faults.lock().unwrap().down = down;
    }
}

fn run_case(name: &str) {
    let (_, case) = contract::cases()
        .into_iter()
        .find(|(n, _)| *n == name)
        .expect("a known case");
    let history = History::new();
    let mut sim = turmoil::Builder::new()
        .rng_seed(7)
        .simulation_duration(Duration::from_secs(120))
        .build();
    let db = DbServer {
        committed: Default::default(),
        name: DB.into(),
        state: Arc::new(Mutex::new(DbState::with_slots(vec![SLOT.into()]))),
        faults: ServerFaults::shared(seed::rng(7, "db")),
        history: history.clone(),
    };
    sim.host(DB, move || db.clone().serve());
    let mut state = BrokerState::default();
    for topic in TOPICS {
        state.create_topic(topic, 1);
    }
    let broker = BrokerServer {
        state: Arc::new(Mutex::new(state)),
        faults: ServerFaults::shared(seed::rng(7, "broker")),
        history: history.clone(),
        changed: Default::default(),
        deadlines: Default::default(),
    };
    let fixture = SimFixture {
        broker_faults: broker.faults.clone(),
        history: history.clone(),
    };
    sim.host(BROKER, move || broker.clone().serve());
    let name = name.to_string();
    sim.client("tester", async move {
        case(&fixture).await.map_err(|e| format!("{name}: {e}"))?;
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn lost_ack_duplicates_without_idempotence() {
    run_case("lost_ack_duplicates_without_idempotence");
}

#[test]
fn lost_ack_does_not_duplicate_with_idempotence() {
    run_case("lost_ack_does_not_duplicate_with_idempotence");
}

#[test]
fn committed_offsets_resume() {
    run_case("committed_offsets_resume");
}

#[test]
fn unique_key_conflicts_are_reported() {
    run_case("unique_key_conflicts_are_reported");
}

#[test]
fn rows_keep_their_bytes() {
    run_case("rows_keep_their_bytes");
}

#[test]
fn change_log_is_ordered_by_commit() {
    run_case("change_log_is_ordered_by_commit");
}

#[test]
fn committed_transactions_are_visible_aborted_ones_are_not() {
    run_case("committed_transactions_are_visible_aborted_ones_are_not");
}

#[test]
fn a_zombie_producer_is_fenced() {
    run_case("a_zombie_producer_is_fenced");
}

#[test]
fn offsets_commit_only_with_the_transaction() {
    run_case("offsets_commit_only_with_the_transaction");
}

#[test]
fn unconfirmed_changes_are_read_again_in_whole_transactions() {
    run_case("unconfirmed_changes_are_read_again_in_whole_transactions");
}

#[test]
fn deletes_remove_rows_and_log_their_keys() {
    run_case("deletes_remove_rows_and_log_their_keys");
}

#[test]
fn a_broker_slower_than_the_request_timeout_fails_the_send() {
    run_case("a_broker_slower_than_the_request_timeout_fails_the_send");
}

#[test]
fn a_send_during_an_outage_fails_by_its_delivery_timeout() {
    run_case("a_send_during_an_outage_fails_by_its_delivery_timeout");
}

#[test]
fn a_member_waits_out_a_pending_offset_commit_across_rebalances() {
    run_case("a_member_waits_out_a_pending_offset_commit_across_rebalances");
}

#[test]
fn offsets_polled_before_a_rebalance_are_reassigned() {
    run_case("offsets_polled_before_a_rebalance_are_reassigned");
}

/// Each case of the suite has a test above, under its own name: a case
/// added to the suite without one would never run against the simulator.
#[test]
fn every_contract_case_has_a_test() {
    let source = include_str!("contract.rs");
    let missing: Vec<&str> = contract::cases()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| {
            let test = format!("fn {name}() {{\n    run_case(\"{name}\");\n}}");
            !source.contains(&test)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "contract cases without a test here: {}",
        missing.join(", ")
    );
}
