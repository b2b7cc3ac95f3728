//! The bank's names and data: hosts, tables, the topic, the event a
//! transfer makes, and the front door's calls.

use serde::{Deserialize, Serialize};

/// The bank's DB: accounts, transfers and the outbox.
pub const BANK_DB: &str = "bank-db";
/// The ledger's DB: booked entries (and the consumer's dedupe markers).
pub const LEDGER_DB: &str = "ledger-db";
/// The transfers service (the front door).
pub const TRANSFERS: &str = "transfers";
/// The CDC relay of the outbox (only under `relay = "outbox-cdc"`).
pub const RELAY: &str = "relay";

/// Table: account id → [`Account`].
pub const ACCOUNTS: &str = "accounts";
/// Table: transfer id → [`TransferMade`], written once per transfer.
pub const TRANSFERS_TABLE: &str = "transfers";
/// Table: transfer id → [`TransferMade`], the event waiting to be relayed.
pub const OUTBOX: &str = "outbox";
/// Table (ledger DB): entry id → [`Entry`].
pub const ENTRIES: &str = "entries";
/// The topic transfers are relayed to.
pub const TOPIC: &str = "transfers";
/// The relay's replication slot on the bank DB.
pub const SLOT: &str = "bank_outbox";
/// The ledger's consumer group.
pub const GROUP: &str = "ledger";
/// The `type` header of a transfer produced directly (dual write).
pub const TRANSFER_MADE: &str = "transfer-made";

pub fn account_name(i: u32) -> String {
    format!("acct-{i}")
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub balance: i64,
}

/// "`amount` moved from `from` to `to`": the transfers row, the outbox row
/// and the event, with the request that made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferMade {
    pub transfer_id: String,
    pub from: String,
    pub to: String,
    pub amount: i64,
    pub request_id: String,
    pub user_id: String,
}

/// One side of a booking in the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub transfer_id: String,
    pub account: String,
    /// Negative for the debit, positive for the credit.
    pub delta: i64,
}

/// A teller's call: move money between two accounts. Retrying it with the
/// same `transfer_id` is safe.
pub type Transfer = TransferMade;

/// Why a transfer did not (or may not have) happen(ed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TransferError {
    /// It will never happen: not enough money, or an unknown account.
    #[error("rejected: {0}")]
    Rejected(String),
    /// It did not happen: retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// It may have happened: retry with the same transfer id.
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

pub type TransferReply = Result<(), TransferError>;
