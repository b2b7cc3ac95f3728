//! Table names and row shapes of the reference services. The checkers read the
//! same definitions when they rebuild state from a history.

use serde::{Deserialize, Serialize};

/// Payments DB: one row per order, keyed by order id.
pub const PAYMENTS: &str = "payments";
/// Inventory DB: available stock per product, keyed by product.
pub const STOCK: &str = "stock";
/// Inventory DB: a reservation per applied payment (the side effect).
pub const RESERVATIONS: &str = "reservations";
/// Inventory DB: a rejection per payment that found too little stock.
pub const REJECTIONS: &str = "rejections";
/// Inventory DB: a release per applied refund (the stock it gave back, maybe 0).
pub const RELEASES: &str = "releases";
/// Inventory DB: per payment, the revision last applied and what it left in
/// place — the state an order-aware consumer compares revisions against.
pub const EFFECTS: &str = "payment_effects";
/// Inventory DB: dedupe markers written in the same transaction as the effect.
pub const PROCESSED: &str = "processed";

/// The topic the payments service produces domain events to.
pub const PAYMENTS_TOPIC: &str = "payments";
/// The topic the CDC connector produces payments-table changes to.
pub const PAYMENTS_CDC_TOPIC: &str = "payments-db.payments";
/// The replication slot the CDC connector reads through.
pub const PAYMENTS_SLOT: &str = "payments_cdc";
/// The topic the payments service sends order attachments (invoices) to.
pub const INVOICES_TOPIC: &str = "invoices";
/// Archive tables (in the inventory DB server): one row per archived
/// invoice, keyed by order id.
pub const INVOICES: &str = "invoices";
/// Object-store prefix of the resilient producer's fallback.
pub const FALLBACK_PREFIX: &str = "fallback/";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockRow {
    pub available: i64,
}

/// A reservation or a rejection: the inventory service's outcome for one
/// payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRow {
    pub payment_id: String,
    pub revision: u64,
    pub order_id: String,
    pub product: String,
    pub qty: i64,
    pub request_id: String,
    pub user_id: String,
}

/// What the inventory holds for one payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectStatus {
    Reserved,
    Rejected,
    Released,
}

/// A row of [`EFFECTS`], keyed by payment id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectRow {
    /// The payment revision this effect reflects.
    pub revision: u64,
    pub status: EffectStatus,
    pub product: String,
    /// Units held now (0 unless reserved).
    pub held: i64,
}

/// A row of [`INVOICES`]: what the archive stored for an order's attachment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceRow {
    pub order_id: String,
    pub size: u64,
    /// SHA-256 of the bytes the archive reassembled.
    pub digest: String,
    /// The archive's reassembly memory high-water mark when it stored this.
    pub peak_memory_bytes: u64,
}
