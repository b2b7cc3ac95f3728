//! A system of your own under pitfall, by example: a bank.
//!
//! Tellers ask the `transfers` service to move money between accounts. It
//! moves it in one transaction of the bank's DB, and the transfer's event
//! must reach the `ledger`, which books it as a debit and a credit entry in
//! its own DB. The invariant: money is conserved, and every transfer is
//! booked exactly once.
//!
//! Two switches (`[variants]`):
//! - `relay`: `dual-write` (naive: commit, then produce — a broker outage
//!   between the two loses the event) or `outbox-cdc` (the event is an
//!   outbox row in the transfer's transaction, relayed by a CDC connector,
//!   at least once);
//! - `ledger`: `naive`, `dedupe-offset` or `dedupe-event-id` — what stops a
//!   redelivered or re-relayed transfer from being booked twice.
//!
//! The crate depends on pitfall only through its public API: the services
//! are written against [`pitfall::ports`] and [`pitfall::blocks`], the
//! system is described by implementing [`System`] and [`Config`], and
//! `main` calls [`pitfall::cli::main`].

pub mod checkers;
pub mod config;
pub mod model;
pub mod services;
pub mod workload;

use config::{BankConfig, Relay};
use model::*;
use pitfall::blocks::cdc::{CdcConfig, CdcConnector};
use pitfall::blocks::consume::{ConsumerLoop, Idempotency};
use pitfall::harness::checkers::{Anomaly, Invariant};
use pitfall::harness::rpc;
use pitfall::harness::scenario::{InputError, RunParams, ScenarioText};
use pitfall::harness::system::{
    Client, ClientCtx, Component, Config, CrashGroup, DbSpec, HostFuture, Infra, Probe, SeedRow,
    System, Topology, BROKER,
};
use pitfall::ports::ConsumerConfig;
use services::{Book, TransfersService};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The bank, as pitfall sees it.
pub struct Bank;

impl System for Bank {
    fn name(&self) -> &'static str {
        "bank"
    }

    fn describe(&self) -> &'static str {
        "bank transfers with an outbox relayed by CDC to a ledger (the example of a system of your own)"
    }

    fn sections(&self) -> &'static [&'static str] {
        config::SECTIONS
    }

    fn configure(&self, scenario: &ScenarioText<'_>) -> Result<Arc<dyn Config>, InputError> {
        Ok(Arc::new(config::parse(scenario)?))
    }

    fn invariants(&self) -> Vec<Invariant> {
        vec![
            Invariant::new(
                "money-conserved",
                "the accounts' total never changes and no balance goes negative; every ledger booking nets to zero",
                checkers::money_conserved,
            ),
            Invariant::new(
                "booked-exactly-once",
                "every committed transfer is booked in the ledger exactly once, and nothing is booked that was never made",
                checkers::booked_exactly_once,
            ),
        ]
    }

    fn queue_allowed(&self, variants: &BTreeMap<String, String>) -> Vec<Anomaly> {
        match variants.get("relay").map(String::as_str) {
            // The relay re-produces what it had not confirmed when it restarts.
            Some("outbox-cdc") => vec![Anomaly::Duplicate],
            // Retries without idempotence duplicate, and with several
            // requests in flight they reorder.
            _ => vec![Anomaly::Duplicate, Anomaly::NonmonotonicSend],
        }
    }

    fn components(&self) -> Vec<Component> {
        vec![
            Component {
                pitfall: Some(1),
                title: "dual write: how a transfer's event leaves the bank",
                key: "variants.relay",
                variants: vec![
                    (
                        "dual-write",
                        "naive: commit the transfer, then produce its event",
                    ),
                    (
                        "outbox-cdc",
                        "remedy: an outbox row in the transfer's transaction, relayed by CDC",
                    ),
                ],
                checked_by: vec!["booked-exactly-once"],
            },
            Component {
                pitfall: Some(5),
                title: "duplicates: how the ledger applies what it consumes",
                key: "variants.ledger",
                variants: Idempotency::ALL.map(|i| (i.name(), i.describe())).to_vec(),
                checked_by: vec!["booked-exactly-once"],
            },
        ]
    }
}

/// The ledger consumers' host names.
fn ledgers(cfg: &BankConfig) -> Vec<String> {
    (1..=cfg.workload.ledgers)
        .map(|i| format!("ledger-{i}"))
        .collect()
}

fn tellers(cfg: &BankConfig) -> Vec<String> {
    (1..=cfg.workload.tellers)
        .map(|i| format!("teller-{i}"))
        .collect()
}

/// The relay: the outbox table into the transfers topic.
fn relay_config() -> CdcConfig {
    CdcConfig::new(SLOT, &[(OUTBOX, TOPIC)])
}

impl Config for BankConfig {
    fn variants(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("relay".to_string(), self.variants.relay.name().to_string()),
            (
                "ledger".to_string(),
                self.variants.ledger.name().to_string(),
            ),
        ])
    }

    fn topology(&self) -> Topology {
        let outbox = self.variants.relay == Relay::OutboxCdc;
        let mut services = vec![TRANSFERS.to_string()];
        let mut links = vec![(TRANSFERS.to_string(), BANK_DB.to_string())];
        let mut probes = Vec::new();
        if outbox {
            services.push(RELAY.into());
            links.push((RELAY.into(), BANK_DB.into()));
            links.push((RELAY.into(), BROKER.into()));
            probes.push(Probe::Feed {
                db: BANK_DB.into(),
                slot: SLOT.into(),
                tables: vec![OUTBOX.into()],
            });
        } else {
            links.push((TRANSFERS.into(), BROKER.into()));
        }
        for ledger in ledgers(self) {
            links.push((ledger.clone(), BROKER.into()));
            links.push((ledger.clone(), LEDGER_DB.into()));
            services.push(ledger);
        }
        for teller in tellers(self) {
            links.push((teller, TRANSFERS.into()));
        }
        probes.push(Probe::Lag {
            label: "ledger".into(),
            group: GROUP.into(),
            topic: TOPIC.into(),
        });
        let accounts = (0..self.workload.accounts)
            .map(|i| SeedRow {
                table: ACCOUNTS.into(),
                key: account_name(i),
                data: serde_json::json!({ "balance": self.workload.initial_balance }),
            })
            .collect();
        Topology {
            dbs: vec![
                DbSpec {
                    name: BANK_DB.into(),
                    tables: vec![ACCOUNTS.into(), TRANSFERS_TABLE.into(), OUTBOX.into()],
                    rows: accounts,
                    slots: if outbox { vec![SLOT.into()] } else { vec![] },
                },
                DbSpec {
                    name: LEDGER_DB.into(),
                    tables: vec![ENTRIES.into(), pitfall::blocks::consume::PROCESSED.into()],
                    ..DbSpec::default()
                },
            ],
            topics: vec![TOPIC.into()],
            services,
            clients: tellers(self),
            links,
            probes,
            crash_groups: vec![CrashGroup {
                name: "crash-ledger".into(),
                describe: "a ledger consumer crashes and restarts".into(),
                hosts: ledgers(self),
            }],
        }
    }

    fn spawn(&self, host: &str, infra: &dyn Infra) -> HostFuture {
        match host {
            TRANSFERS => {
                let producer = (self.variants.relay == Relay::DualWrite)
                    .then(|| infra.broker().producer(&self.producer));
                let service = Arc::new(TransfersService::new(
                    infra.db(BANK_DB),
                    self.variants.relay,
                    producer,
                ));
                Box::pin(rpc::serve(infra.listen(), move |t: Transfer| {
                    let service = service.clone();
                    async move { service.call(t).await }
                }))
            }
            RELAY => Box::pin(
                CdcConnector::new(
                    infra.feed(BANK_DB),
                    infra.broker().producer(&self.producer),
                    infra.env(),
                    relay_config(),
                )
                .run(),
            ),
            _ => {
                let env = infra.env();
                let consumer = infra.broker().consumer(&ConsumerConfig {
                    group: GROUP.into(),
                    topics: vec![TOPIC.into()],
                    session_timeout_ms: 2_000,
                    max_poll_records: 10,
                    read_committed: false,
                });
                Box::pin(
                    ConsumerLoop::new(
                        consumer,
                        infra.db(LEDGER_DB),
                        Arc::new(Book::new(env.clone())),
                        env,
                        self.variants.ledger,
                    )
                    .run(),
                )
            }
        }
    }

    fn clients(&self, seed: u64, run: &RunParams) -> Vec<Client> {
        let planned = workload::draw(seed, &self.workload, run.chaos_ms());
        let attempts = self.workload.attempts;
        tellers(self)
            .into_iter()
            .enumerate()
            .map(|(i, name)| {
                let mine: Vec<_> = planned
                    .iter()
                    .filter(|p| p.teller == i as u32 + 1)
                    .cloned()
                    .collect();
                let process = name.clone();
                Client {
                    name,
                    run: Box::new(move |ctx: ClientCtx| -> HostFuture {
                        Box::pin(async move {
                            workload::teller(process, mine, attempts, ctx.history, ctx.rpc.as_ref())
                                .await
                        })
                    }),
                }
            })
            .collect()
    }
}
