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
pub const PROCESSED: &str = pitfall_blocks::consume::PROCESSED;

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
/// Payments DB: one row per refund, keyed by order id (pitfall 2's third
/// topic comes from its change log).
pub const REFUNDS: &str = "refunds";
/// The topic the CDC connector produces refunds-table changes to.
pub const REFUNDS_CDC_TOPIC: &str = "payments-db.refunds";
/// The inventory DB's replication slot, and the topic its `payment_effects`
/// changes go to: the inventory-reservations topic the orders service reads.
pub const INVENTORY_SLOT: &str = "inventory_cdc";
pub const EFFECTS_CDC_TOPIC: &str = "inventory-db.payment_effects";

/// Orders DB (pitfall 2), `crud-cdc`: one row per order ([`crate::services::orders::OrderRow`]).
pub const ORDERS: &str = "orders";
/// Orders DB, `event-sourced`: the event store, keyed `{order}/{seq:06}`.
pub const ORDER_EVENTS: &str = "order_events";
/// Orders DB, `event-sourced`: the latest snapshot per order.
pub const ORDER_SNAPSHOTS: &str = "order_snapshots";
/// Orders DB: the order-view projection, keyed by order id.
pub const ORDER_VIEW: &str = "order_view";
/// The orders DB's replication slot.
pub const ORDERS_SLOT: &str = "orders_cdc";
/// `crud-cdc`: the raw change log of the orders table (only the translator reads it).
pub const ORDERS_CDC_TOPIC: &str = "orders-db.orders";
/// `crud-cdc`: the translator's official order-events API topic.
pub const ORDER_EVENTS_TOPIC: &str = "order-events";
/// `event-sourced`: the event store's events, published by CDC.
pub const ORDER_EVENTS_CDC_TOPIC: &str = "orders-db.order_events";

/// Object-store prefix of the resilient producer's fallback.
pub const FALLBACK_PREFIX: &str = pitfall_blocks::publish::FALLBACK_PREFIX;

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
    /// The order, and the request that last changed this effect (so its
    /// change event carries that request's context).
    #[serde(default)]
    pub order_id: String,
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub user_id: String,
}

/// A row of [`REFUNDS`], keyed by order id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRow {
    pub refund_id: String,
    pub order_id: String,
    pub payment_id: String,
    pub request_id: String,
    pub user_id: String,
}

/// A row of [`INVOICES`]: what the archive stored for an order's attachment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceRow {
    pub order_id: String,
    pub size: u64,
    /// BLAKE3 of the bytes the archive reassembled.
    pub digest: String,
    /// The archive's reassembly memory high-water mark when it stored this.
    pub peak_memory_bytes: u64,
}

/// Inventory DB, third-party `outbox`: the shipments to request, one row per
/// reservation, keyed by the payment event's id and written in the
/// reservation's transaction.
pub const SHIP_OUTBOX: &str = "ship_outbox";
/// The inventory DB's slot the shipping relay reads the outbox through.
pub const SHIPPER_SLOT: &str = "shipper_outbox";
/// The carrier's DB (the third party's own state): one row per shipment it
/// performed, keyed by a fresh shipment id.
pub const SHIPMENTS: &str = "shipments";
/// The carrier's DB: idempotency key → the shipment it first produced.
pub const SHIPMENT_KEYS: &str = "shipment_keys";

/// What the inventory asks the carrier to ship for one reservation: the
/// outbox row, and the body of the call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipRequest {
    pub payment_id: String,
    pub order_id: String,
    pub product: String,
    pub qty: i64,
    pub request_id: String,
    pub user_id: String,
}

/// A row of [`SHIPMENTS`]: a shipment the carrier performed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentRow {
    #[serde(flatten)]
    pub request: ShipRequest,
    /// The idempotency key the call carried, if any.
    pub key: Option<String>,
}

/// `kafka-eos`: the topic inventory produces a reserved event to, in the
/// same Kafka transaction as its offsets.
pub const RESERVED_TOPIC: &str = "inventory-reserved";

/// `kafka-eos`: inventory's output for one payment event it consumed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservedEvent {
    pub payment_id: String,
    pub revision: u64,
    /// The consumed record it answers, `topic/partition@offset`: the same
    /// record's output twice in the committed log is a duplicate.
    pub source: String,
    pub request_id: String,
    pub user_id: String,
}
