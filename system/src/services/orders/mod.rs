//! Pitfall 2: the orders service and what hangs off it. It tracks each
//! purchase from three topics — payments, inventory reservations (the
//! inventory's effects, by CDC) and refunds — plus the shopper's own "place
//! order", and serves an order-status read endpoint. How it keeps that state
//! is the [`OrdersModel`](crate::variants::OrdersModel) variant:
//!
//! - `event-sourced`: facts are appended to an event store and the state is
//!   rebuilt by replaying them from the latest snapshot; a background
//!   [`Snapshotter`] takes a snapshot every K events; reads come from the
//!   [`view`] projection that the published events feed (eventually);
//! - `crud-cdc`: one row per order, updated in place and read directly; its
//!   change log feeds the [`translator`], which publishes the official
//!   order-events topic that downstream services (the [`view`]) read.
//!
//! This module owns the data: the order's state, the facts that change it,
//! and the rows each model stores.

mod service;
#[cfg(test)]
mod tests;
pub mod translator;
pub mod view;

pub use service::{OrdersService, Snapshotter};

use crate::events::PaymentStatus;
use crate::schema::EffectStatus;
use serde::{Deserialize, Serialize};

/// The consumer group of the orders service.
pub const GROUP: &str = "orders";
/// The record type of the translator's official order events.
pub const ORDER_EVENT: &str = "order-event";

/// The three topics the orders service follows a purchase through:
/// payments (this variant's `payments_topic`), inventory reservations and
/// refunds.
pub fn tracked_topics(payments_topic: &'static str) -> [&'static str; 3] {
    [
        payments_topic,
        crate::schema::EFFECTS_CDC_TOPIC,
        crate::schema::REFUNDS_CDC_TOPIC,
    ]
}

/// What the orders service knows about one purchase.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    pub order_id: String,
    /// Whether the shopper's "place order" was accepted.
    pub placed: bool,
    pub user_id: String,
    pub product: String,
    pub qty: i64,
    /// The payment's status and revision (the payment row's version), as
    /// last seen on the payments topic.
    pub payment: Option<PaymentStatus>,
    pub payment_revision: u64,
    /// The inventory's effect for the payment and its row version, as last
    /// seen on the inventory-reservations topic.
    pub stock: Option<EffectStatus>,
    pub stock_version: u64,
    /// The refund, once the refunds topic told of it.
    pub refund_id: Option<String>,
}

/// One thing that happened to an order: an event in the event store, or
/// the last change of a CRUD row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OrderFact {
    Placed {
        user_id: String,
        product: String,
        qty: i64,
    },
    Payment {
        status: PaymentStatus,
        revision: u64,
    },
    Stock {
        status: EffectStatus,
        version: u64,
    },
    Refunded {
        refund_id: String,
    },
}

impl OrderState {
    pub fn new(order_id: &str) -> Self {
        OrderState {
            order_id: order_id.to_string(),
            ..OrderState::default()
        }
    }

    /// Apply a fact. Returns false, changing nothing, when it is not news: a
    /// duplicate, or an older revision than the one already applied.
    pub fn apply(&mut self, fact: &OrderFact) -> bool {
        match fact {
            OrderFact::Placed {
                user_id,
                product,
                qty,
            } => {
                if self.placed {
                    return false;
                }
                self.placed = true;
                self.user_id = user_id.clone();
                self.product = product.clone();
                self.qty = *qty;
            }
            OrderFact::Payment { status, revision } => {
                if *revision <= self.payment_revision {
                    return false;
                }
                self.payment = Some(*status);
                self.payment_revision = *revision;
            }
            OrderFact::Stock { status, version } => {
                if *version <= self.stock_version {
                    return false;
                }
                self.stock = Some(*status);
                self.stock_version = *version;
            }
            OrderFact::Refunded { refund_id } => {
                if self.refund_id.is_some() {
                    return false;
                }
                self.refund_id = Some(refund_id.clone());
            }
        }
        true
    }

    /// The state a sequence of facts leads to.
    pub fn fold<'a>(order_id: &str, facts: impl IntoIterator<Item = &'a OrderFact>) -> Self {
        let mut state = OrderState::new(order_id);
        for fact in facts {
            state.apply(fact);
        }
        state
    }
}

/// `crud-cdc`: a row of [`ORDERS`](crate::schema::ORDERS), keyed by order id.
/// `last` says what its latest change was, so the translator can name the
/// event; `request_id`/`user_id` name the request that change came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRow {
    pub order_id: String,
    pub state: OrderState,
    pub last: OrderFact,
    pub request_id: String,
    pub user_id: String,
}

/// `event-sourced`: a row of [`ORDER_EVENTS`](crate::schema::ORDER_EVENTS),
/// keyed by [`event_key`]. Events are never changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEventRow {
    pub order_id: String,
    /// 1, 2, … per order, without gaps.
    pub seq: u64,
    pub fact: OrderFact,
    pub request_id: String,
    pub user_id: String,
}

/// The event store key of an order's `seq`th event.
pub fn event_key(order_id: &str, seq: u64) -> String {
    format!("{order_id}/{seq:06}")
}

/// `event-sourced`: a row of [`ORDER_SNAPSHOTS`](crate::schema::ORDER_SNAPSHOTS):
/// the state after the order's first `upto` events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRow {
    pub order_id: String,
    pub upto: u64,
    pub state: OrderState,
}

/// A row of [`ORDER_VIEW`](crate::schema::ORDER_VIEW): the projection's state
/// of an order and the revision it reflects (the last event's sequence
/// number, or the orders row's version).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewRow {
    pub order_id: String,
    pub revision: u64,
    pub state: OrderState,
}

/// The translator's official domain event, on
/// [`ORDER_EVENTS_TOPIC`](crate::schema::ORDER_EVENTS_TOPIC): what changed,
/// and the whole state after it at `revision`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEvent {
    pub order_id: String,
    pub revision: u64,
    pub fact: OrderFact,
    pub state: OrderState,
    pub request_id: String,
    pub user_id: String,
}

/// A shopper's "place order".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceOrder {
    pub order_id: String,
    pub product: String,
    pub qty: i64,
    pub user_id: String,
    pub request_id: String,
}

/// A shopper's read of an order's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetOrder {
    pub order_id: String,
    pub user_id: String,
    pub request_id: String,
}

/// One call to the orders service's RPC front.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrdersCall {
    Place(PlaceOrder),
    Get(GetOrder),
}

impl OrdersCall {
    /// The operation's name in the history.
    pub fn op(&self) -> &'static str {
        match self {
            OrdersCall::Place(_) => "place",
            OrdersCall::Get(_) => "read",
        }
    }

    pub fn request_id(&self) -> &str {
        match self {
            OrdersCall::Place(r) => &r.request_id,
            OrdersCall::Get(r) => &r.request_id,
        }
    }
}

/// Why an orders call did not return OK.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum OrdersError {
    /// Nothing was done; the call may be retried.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The service does not know whether it happened.
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

/// What the RPC answers: a read's state (`None` when there is no such
/// order), nothing for a placement.
pub type OrdersReply = Result<Option<OrderState>, OrdersError>;

#[cfg(test)]
mod model_tests {
    use super::*;

    fn placed() -> OrderFact {
        OrderFact::Placed {
            user_id: "u1".into(),
            product: "apple".into(),
            qty: 2,
        }
    }

    #[test]
    fn facts_apply_once_and_older_revisions_are_ignored() {
        let mut s = OrderState::new("o1");
        assert!(s.apply(&placed()));
        assert!(!s.apply(&placed()));
        let paid = |revision, status| OrderFact::Payment { status, revision };
        assert!(s.apply(&paid(2, PaymentStatus::Refunded)));
        assert!(!s.apply(&paid(1, PaymentStatus::Completed)));
        assert_eq!(s.payment, Some(PaymentStatus::Refunded));
        let stock = |version, status| OrderFact::Stock { status, version };
        assert!(s.apply(&stock(1, EffectStatus::Reserved)));
        assert!(s.apply(&stock(2, EffectStatus::Released)));
        assert!(!s.apply(&stock(2, EffectStatus::Reserved)));
        assert_eq!(s.stock, Some(EffectStatus::Released));
        assert_eq!(
            OrderState::fold(
                "o1",
                &[
                    placed(),
                    paid(2, PaymentStatus::Refunded),
                    stock(1, EffectStatus::Reserved),
                    stock(2, EffectStatus::Released)
                ]
            ),
            s
        );
    }
}
