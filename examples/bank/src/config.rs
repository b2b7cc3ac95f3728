//! The bank's sections of a scenario file: `[variants]` (how a transfer's
//! event reaches the ledger, and how the ledger applies it), `[workload]`
//! and `[producer]`.

use pitfall::blocks::consume::Idempotency;
use pitfall::harness::scenario::{InputError, ScenarioText, Spanned};
use pitfall::ports::ProducerConfig;
use serde::Deserialize;

pub const SECTIONS: &[&str] = &["variants", "workload", "producer"];

/// How a transfer's event leaves the bank.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Relay {
    /// Naive: commit the transfer, then produce its event.
    DualWrite,
    /// The outbox row is written in the transfer's transaction; a CDC
    /// connector relays it.
    OutboxCdc,
}

impl Relay {
    pub fn name(self) -> &'static str {
        match self {
            Relay::DualWrite => "dual-write",
            Relay::OutboxCdc => "outbox-cdc",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variants {
    pub relay: Relay,
    /// How the ledger applies what it consumes.
    pub ledger: Idempotency,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub tellers: u32,
    pub accounts: u32,
    pub initial_balance: i64,
    pub transfers: u32,
    /// Largest amount of one transfer (drawn from 1 to this).
    #[serde(default = "default_max_amount")]
    pub max_amount: i64,
    /// Tries per transfer before a teller gives up.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Ledger consumers in the group.
    #[serde(default = "default_ledgers")]
    pub ledgers: u32,
}

fn default_max_amount() -> i64 {
    50
}

fn default_attempts() -> u32 {
    8
}

fn default_ledgers() -> u32 {
    2
}

#[derive(Deserialize)]
struct File {
    variants: Variants,
    workload: Spanned<Workload>,
    producer: Option<Spanned<ProducerConfig>>,
}

/// The bank as one scenario configures it.
#[derive(Clone, Debug, PartialEq)]
pub struct BankConfig {
    pub variants: Variants,
    pub workload: Workload,
    pub producer: ProducerConfig,
}

pub fn parse(file: &ScenarioText<'_>) -> Result<BankConfig, InputError> {
    let f: File = file.parse()?;
    let w = f.workload.get_ref();
    let checks = [
        (
            (1..=16).contains(&w.tellers),
            "workload.tellers must be 1 to 16",
        ),
        (
            (2..=1000).contains(&w.accounts),
            "workload.accounts must be 2 to 1000",
        ),
        (
            (0..=1_000_000_000_000).contains(&w.initial_balance),
            "workload.initial_balance must be 0 to 1000000000000",
        ),
        (
            (1..=10_000).contains(&w.transfers),
            "workload.transfers must be 1 to 10000",
        ),
        (
            (1..=1_000_000_000).contains(&w.max_amount),
            "workload.max_amount must be 1 to 1000000000",
        ),
        (
            (1..=100).contains(&w.attempts),
            "workload.attempts must be 1 to 100",
        ),
        (
            (1..=8).contains(&w.ledgers),
            "workload.ledgers must be 1 to 8",
        ),
    ];
    file.require(f.workload.span().start, &checks)?;
    Ok(BankConfig {
        variants: f.variants,
        workload: f.workload.into_inner(),
        producer: file.checked_section(f.producer, ProducerConfig::check)?,
    })
}
