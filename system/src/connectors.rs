//! The reference system's CDC connectors: which slot each reads and which
//! tables go to which topics.

use crate::schema;
use crate::variants::OrdersModel;
use pitfall_blocks::cdc::CdcConfig;

/// The payments table into the payments CDC topic.
pub fn payments() -> CdcConfig {
    CdcConfig::new(
        schema::PAYMENTS_SLOT,
        &[(schema::PAYMENTS, schema::PAYMENTS_CDC_TOPIC)],
    )
}

/// The payments connector that also captures the refunds table (when the
/// orders service reads it).
pub fn payments_with_refunds() -> CdcConfig {
    payments().route(schema::REFUNDS, schema::REFUNDS_CDC_TOPIC)
}

/// The inventory DB's connector: the inventory's per-payment effects into
/// the inventory-reservations topic (read by the orders service).
pub fn inventory() -> CdcConfig {
    CdcConfig::new(
        schema::INVENTORY_SLOT,
        &[(schema::EFFECTS, schema::EFFECTS_CDC_TOPIC)],
    )
}

/// The orders DB's connector: the table the orders model keeps its truth in
/// (the event store, or the CRUD table) into its topic, keyed by order so
/// one order's events stay in one partition, in order.
pub fn orders(model: OrdersModel) -> CdcConfig {
    let (table, topic) = model.captured();
    CdcConfig::new(schema::ORDERS_SLOT, &[(table, topic)]).key_by(table, "order_id")
}
