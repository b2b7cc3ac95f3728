//! Builders for hand-made histories in checker tests.

use crate::events::{PaymentCompleted, PaymentStatus};
use crate::schema::{
    EffectRow, EffectStatus, OutcomeRow, StockRow, EFFECTS, PAYMENTS, REJECTIONS, RELEASES,
    RESERVATIONS, STOCK,
};
use crate::topology::{INVENTORY_DB, PAYMENTS_DB};
use pitfall_harness::history::{Entry, Event};
use pitfall_ports::{Change, ChangeOp};
use serde_json::json;

fn commit(t: u64, db: &str, lsn: u64, changes: Vec<Change>) -> Entry {
    Entry {
        t,
        event: Event::DbCommit {
            db: db.into(),
            process: "test".into(),
            lsn,
            changes,
        },
    }
}

fn change(
    lsn: u64,
    table: &str,
    key: &str,
    op: ChangeOp,
    version: u64,
    data: serde_json::Value,
) -> Change {
    Change {
        lsn,
        table: table.into(),
        key: key.into(),
        op,
        version,
        data,
    }
}

pub fn stock(t: u64, lsn: u64, levels: &[(&str, i64)]) -> Entry {
    let changes = levels
        .iter()
        .map(|(p, n)| {
            change(
                lsn,
                STOCK,
                p,
                ChangeOp::Insert,
                1,
                json!(StockRow { available: *n }),
            )
        })
        .collect();
    commit(t, INVENTORY_DB, lsn, changes)
}

pub fn payment_row(order: &str, product: &str, qty: i64) -> PaymentCompleted {
    PaymentCompleted {
        payment_id: format!("pay-{order}"),
        order_id: order.into(),
        product: product.into(),
        qty,
        user_id: "u1".into(),
        request_id: format!("r-{order}"),
        revision: 1,
        status: PaymentStatus::Completed,
        attachment: None,
    }
}

/// The payments service refunding `order`: its row moves to revision 2.
pub fn refund(t: u64, lsn: u64, order: &str, product: &str, qty: i64) -> Entry {
    let p = PaymentCompleted {
        revision: 2,
        status: PaymentStatus::Refunded,
        request_id: format!("r-refund-{order}"),
        ..payment_row(order, product, qty)
    };
    commit(
        t,
        PAYMENTS_DB,
        lsn,
        vec![change(lsn, PAYMENTS, order, ChangeOp::Update, 2, json!(p))],
    )
}

/// A release of `qty` units for `order`'s refund that leaves `product` at
/// `left` (stock row version `version`).
pub fn release(
    t: u64,
    lsn: u64,
    order: &str,
    product: &str,
    qty: i64,
    version: u64,
    left: i64,
) -> Entry {
    let row = OutcomeRow {
        revision: 2,
        ..outcome_row(order, product, qty)
    };
    commit(
        t,
        INVENTORY_DB,
        lsn,
        vec![
            change(
                lsn,
                STOCK,
                product,
                ChangeOp::Update,
                version,
                json!(StockRow { available: left }),
            ),
            change(
                lsn,
                RELEASES,
                &format!("rel-{lsn}"),
                ChangeOp::Insert,
                1,
                json!(row),
            ),
        ],
    )
}

/// Inventory recording that `order`'s payment is applied up to `revision`.
pub fn effect(t: u64, lsn: u64, order: &str, revision: u64, status: EffectStatus) -> Entry {
    let row = EffectRow {
        revision,
        status,
        product: "apple".into(),
        held: 0,
        order_id: order.into(),
        request_id: format!("r-{order}"),
        user_id: "u1".into(),
    };
    commit(
        t,
        INVENTORY_DB,
        lsn,
        vec![change(
            lsn,
            EFFECTS,
            &format!("pay-{order}"),
            ChangeOp::Update,
            revision,
            json!(row),
        )],
    )
}

pub fn payment(t: u64, lsn: u64, order: &str, product: &str, qty: i64) -> Entry {
    let p = payment_row(order, product, qty);
    commit(
        t,
        PAYMENTS_DB,
        lsn,
        vec![change(lsn, PAYMENTS, order, ChangeOp::Insert, 1, json!(p))],
    )
}

/// A reservation of `qty` that leaves `product` at `left` (stock row
/// version `version`).
pub fn reserve(
    t: u64,
    lsn: u64,
    order: &str,
    product: &str,
    qty: i64,
    version: u64,
    left: i64,
) -> Entry {
    let row = outcome_row(order, product, qty);
    commit(
        t,
        INVENTORY_DB,
        lsn,
        vec![
            change(
                lsn,
                STOCK,
                product,
                ChangeOp::Update,
                version,
                json!(StockRow { available: left }),
            ),
            change(
                lsn,
                RESERVATIONS,
                &format!("res-{lsn}"),
                ChangeOp::Insert,
                1,
                json!(row),
            ),
        ],
    )
}

pub fn reject(t: u64, lsn: u64, order: &str, product: &str, qty: i64) -> Entry {
    let row = outcome_row(order, product, qty);
    commit(
        t,
        INVENTORY_DB,
        lsn,
        vec![change(
            lsn,
            REJECTIONS,
            &format!("rej-{lsn}"),
            ChangeOp::Insert,
            1,
            json!(row),
        )],
    )
}

fn outcome_row(order: &str, product: &str, qty: i64) -> OutcomeRow {
    OutcomeRow {
        payment_id: format!("pay-{order}"),
        revision: 1,
        order_id: order.into(),
        product: product.into(),
        qty,
        request_id: format!("r-{order}"),
        user_id: "u1".into(),
    }
}

pub fn append(t: u64, key: &str, offset: u64) -> Entry {
    Entry {
        t,
        event: Event::Append {
            topic: "payments".into(),
            partition: 0,
            offset,
            key: key.into(),
            headers: vec![],
            producer: "payments".into(),
            value: json!({}),
            wire_bytes: None,
        },
    }
}

/// A run header whose variants include a third-party call.
pub fn run_with_third_party() -> Entry {
    Entry {
        t: 0,
        event: Event::Run {
            scenario: "third-party".into(),
            seed: 1,
            mode: "sim".into(),
            system: "shop".into(),
            variants: [("third-party".to_string(), "naive".to_string())].into(),
        },
    }
}

/// The carrier shipping `order`'s payment as shipment `id`.
pub fn shipment(t: u64, lsn: u64, id: &str, order: &str, key: Option<&str>) -> Entry {
    let row = crate::schema::ShipmentRow {
        request: crate::schema::ShipRequest {
            payment_id: format!("pay-{order}"),
            order_id: order.into(),
            product: "apple".into(),
            qty: 1,
            request_id: format!("r-{order}"),
            user_id: "u1".into(),
        },
        key: key.map(String::from),
    };
    commit(
        t,
        crate::topology::CARRIER_DB,
        lsn,
        vec![change(
            lsn,
            crate::schema::SHIPMENTS,
            id,
            ChangeOp::Insert,
            1,
            json!(row),
        )],
    )
}
