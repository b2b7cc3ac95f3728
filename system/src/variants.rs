//! The switchable variants: for each pitfall, the naive version and its
//! remedies. Scenarios pick one per component.

use serde::{Deserialize, Serialize};

/// Pitfall 5: how the inventory service applies a consumed event (the
/// consumer loop's strategy).
pub use pitfall_blocks::consume::Idempotency;

/// Pitfall 1: how the payments service gets its event out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Publish {
    /// Commit to the DB, then produce. Naive: the two are not atomic.
    DualWrite,
    /// Produce, then commit. Also naive, the other way round.
    ProduceFirst,
    /// Commit, then produce; if the broker fails, park the event in the
    /// object store, and a recovery service re-produces it later.
    ResilientProducer,
    /// Commit only; a CDC connector tails the change log into the broker.
    Cdc,
}

impl Publish {
    pub const ALL: [Publish; 4] = [
        Publish::DualWrite,
        Publish::ProduceFirst,
        Publish::ResilientProducer,
        Publish::Cdc,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Publish::DualWrite => "dual-write",
            Publish::ProduceFirst => "produce-first",
            Publish::ResilientProducer => "resilient-producer",
            Publish::Cdc => "cdc",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Publish::DualWrite => "naive: commit the payment, then produce the event",
            Publish::ProduceFirst => "naive: produce the event, then commit the payment",
            Publish::ResilientProducer => {
                "remedy: produce, falling back to the object store; a recovery service re-produces"
            }
            Publish::Cdc => "remedy: commit only; a CDC connector tails the change log",
        }
    }

    /// The topic the inventory service consumes for this variant.
    pub fn topic(self) -> &'static str {
        match self {
            Publish::Cdc => crate::schema::PAYMENTS_CDC_TOPIC,
            _ => crate::schema::PAYMENTS_TOPIC,
        }
    }
}

/// Pitfall 3: whether every hop carries the request context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Context {
    /// Every hop attaches and restores `requestId`/`userId` automatically.
    #[default]
    Propagated,
    /// The CDC connector and the recovery service produce without the
    /// context headers, as hops that know nothing of it do.
    NoPropagation,
}

impl Context {
    pub const ALL: [Context; 2] = [Context::Propagated, Context::NoPropagation];

    pub fn name(self) -> &'static str {
        match self {
            Context::Propagated => "propagated",
            Context::NoPropagation => "no-propagation",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Context::Propagated => {
                "remedy: the building blocks carry requestId/userId across every hop and into logs"
            }
            Context::NoPropagation => {
                "naive: the CDC connector and the recovery service drop the context headers"
            }
        }
    }

    pub fn propagates(self) -> bool {
        self == Context::Propagated
    }
}

/// Ordering: what the inventory consumer does with an update that arrives
/// after a newer one for the same payment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ordering {
    /// Apply whatever arrives, in arrival order. The default, so that the
    /// idempotency variant alone decides what a duplicate does (a revision
    /// check would also stop a re-delivered event).
    #[default]
    OrderNaive,
    /// Keep the last applied revision per payment in the effect's
    /// transaction and discard anything not newer.
    Revision,
}

impl Ordering {
    pub const ALL: [Ordering; 2] = [Ordering::OrderNaive, Ordering::Revision];

    pub fn name(self) -> &'static str {
        match self {
            Ordering::OrderNaive => "order-naive",
            Ordering::Revision => "revision",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Ordering::OrderNaive => "naive: apply each payment update as it arrives",
            Ordering::Revision => {
                "remedy: store the applied revision with the effect; discard stale updates"
            }
        }
    }
}

/// Pitfall 2: how the orders service keeps the order-status view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrdersModel {
    /// Orders are an event store; state is rebuilt by replaying events (from
    /// a snapshot taken every K events), and reads come from a projection
    /// the published events feed.
    EventSourced,
    /// Orders are a table updated with plain CRUD and read from it; its
    /// change log feeds a translator that publishes official order events.
    CrudCdc,
}

impl OrdersModel {
    pub const ALL: [OrdersModel; 2] = [OrdersModel::EventSourced, OrdersModel::CrudCdc];

    pub fn name(self) -> &'static str {
        match self {
            OrdersModel::EventSourced => "event-sourced",
            OrdersModel::CrudCdc => "crud-cdc",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            OrdersModel::EventSourced => {
                "naive: an event store with snapshots; reads come from a projection the events feed"
            }
            OrdersModel::CrudCdc => {
                "remedy: a CRUD table read directly; CDC feeds a translator that publishes official order events"
            }
        }
    }

    /// The topic the order-view projection reads.
    pub fn view_topic(self) -> &'static str {
        match self {
            OrdersModel::EventSourced => crate::schema::ORDER_EVENTS_CDC_TOPIC,
            OrdersModel::CrudCdc => crate::schema::ORDER_EVENTS_TOPIC,
        }
    }

    /// The orders DB table the CDC connector captures, and its topic.
    pub fn captured(self) -> (&'static str, &'static str) {
        match self {
            OrdersModel::EventSourced => (
                crate::schema::ORDER_EVENTS,
                crate::schema::ORDER_EVENTS_CDC_TOPIC,
            ),
            OrdersModel::CrudCdc => (crate::schema::ORDERS, crate::schema::ORDERS_CDC_TOPIC),
        }
    }
}

/// Pitfall 5 with Kafka transactions: how the inventory commits its
/// progress (`[variants] delivery`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// Apply the effect, then commit the offsets: at least once.
    #[default]
    AtLeastOnce,
    /// Consume-transform-produce in a Kafka transaction: the "reserved"
    /// event and the offsets commit together, the DB effect before them,
    /// outside the transaction.
    KafkaEos,
}

impl Delivery {
    pub const ALL: [Delivery; 2] = [Delivery::AtLeastOnce, Delivery::KafkaEos];

    pub fn name(self) -> &'static str {
        match self {
            Delivery::AtLeastOnce => "at-least-once",
            Delivery::KafkaEos => "kafka-eos",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Delivery::AtLeastOnce => "apply the effect, then commit the offsets",
            Delivery::KafkaEos => {
                "Kafka exactly-once: produce the reserved event and commit the offsets in one Kafka transaction; the DB effect commits before it, outside it (exactly once only with the topic-partition-offset stored in the effect's transaction: consumer = dedupe-offset)"
            }
        }
    }
}

/// Pitfall 5 outside the DB: how the inventory calls the third-party
/// carrier once per reservation (`[third_party] call`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ThirdPartyCall {
    /// Call while applying the payment, retry a call that got no answer.
    Naive,
    /// The same call, with the payment event's id as an idempotency key the
    /// carrier dedupes on.
    IdempotencyKey,
    /// Write the call into an outbox row in the reservation's transaction;
    /// a relay reads the outbox from the change feed and calls, keyed by the
    /// row.
    Outbox,
}

impl ThirdPartyCall {
    pub const ALL: [ThirdPartyCall; 3] = [
        ThirdPartyCall::Naive,
        ThirdPartyCall::IdempotencyKey,
        ThirdPartyCall::Outbox,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ThirdPartyCall::Naive => "naive",
            ThirdPartyCall::IdempotencyKey => "idempotency-key",
            ThirdPartyCall::Outbox => "outbox",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            ThirdPartyCall::Naive => {
                "naive: call the carrier while applying, retry a call that timed out"
            }
            ThirdPartyCall::IdempotencyKey => {
                "remedy: send the event id as an idempotency key; the carrier answers a repeat from its first result"
            }
            ThirdPartyCall::Outbox => {
                "remedy: record the call in the reservation's transaction; a relay makes it from the change feed, keyed by the outbox row"
            }
        }
    }
}

/// The variant switches, per pitfall, with the invariants that catch each
/// pitfall's naive variants: what `pitfall list` shows.
pub fn components() -> Vec<pitfall_harness::system::Component> {
    use pitfall_blocks::payload::Strategy;
    use pitfall_harness::system::Component;
    vec![
        Component {
            pitfall: Some(1),
            title: "dual write: how payments gets its event out",
            key: "variants.producer",
            variants: Publish::ALL.map(|p| (p.name(), p.describe())).to_vec(),
            checked_by: vec!["no-lost-payment", "no-phantom", "queue"],
        },
        Component {
            pitfall: Some(2),
            title: "event sourcing everywhere: how the orders service keeps its order-status view",
            key: "orders.model",
            variants: OrdersModel::ALL.map(|m| (m.name(), m.describe())).to_vec(),
            checked_by: vec![
                "read-after-write",
                "view-convergence",
                "snapshot-consistency",
            ],
        },
        Component {
            pitfall: Some(3),
            title: "context propagation: requestId/userId across every hop",
            key: "variants.context",
            variants: Context::ALL.map(|c| (c.name(), c.describe())).to_vec(),
            checked_by: vec!["context-complete"],
        },
        Component {
            pitfall: Some(4),
            title: "large payloads: how an order's attachment reaches the archive",
            key: "payloads.strategy",
            variants: Strategy::ALL.map(|s| (s.name(), s.describe())).to_vec(),
            checked_by: vec![
                "payload-integrity",
                "no-dangling-reference",
                "no-partial-assembly",
            ],
        },
        Component {
            pitfall: Some(5),
            title: "duplicates: how inventory applies what it consumes",
            key: "variants.consumer",
            variants: Idempotency::ALL.map(|c| (c.name(), c.describe())).to_vec(),
            checked_by: vec!["no-double-effect", "stock-conservation"],
        },
        Component {
            pitfall: Some(5),
            title: "ordering: whether inventory discards stale revisions",
            key: "variants.ordering",
            variants: Ordering::ALL.map(|o| (o.name(), o.describe())).to_vec(),
            checked_by: vec!["per-key-order"],
        },
        Component {
            pitfall: Some(5),
            title: "Kafka transactions: how inventory commits its progress",
            key: "variants.delivery",
            variants: Delivery::ALL.map(|d| (d.name(), d.describe())).to_vec(),
            checked_by: vec!["no-double-effect", "output-exactly-once"],
        },
        Component {
            pitfall: Some(5),
            title: "side effects outside the DB: how inventory calls the third-party carrier",
            key: "third_party.call",
            variants: ThirdPartyCall::ALL
                .map(|c| (c.name(), c.describe()))
                .to_vec(),
            checked_by: vec!["no-double-call", "call-completes"],
        },
    ]
}
