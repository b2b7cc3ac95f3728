//! The reference system's sections of a scenario file — `[variants]`,
//! `[workload]`, `[producer]`, `[payloads]`, `[orders]`, `[third_party]` —
//! parsed strictly and checked, each error located in the file.

use crate::variants::{
    Context, Delivery, Idempotency, Ordering, OrdersModel, Publish, ThirdPartyCall,
};
use pitfall_blocks::payload::{Codec, Strategy};
use pitfall_harness::scenario::{InputError, ScenarioText};
use pitfall_ports::ProducerConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use toml::Spanned;

/// The top-level keys the reference system reads.
pub const SECTIONS: &[&str] = &[
    "variants",
    "workload",
    "producer",
    "payloads",
    "orders",
    "third_party",
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variants {
    /// Pitfall 1: how payments gets its event out.
    pub producer: Publish,
    /// Pitfall 5: how inventory applies what it consumes.
    pub consumer: Idempotency,
    /// Pitfall 3: whether every hop carries the request context.
    #[serde(default)]
    pub context: Context,
    /// Ordering: whether inventory discards stale updates by revision
    /// (default `order-naive`).
    #[serde(default)]
    pub ordering: Ordering,
    /// Kafka transactions: whether inventory produces its reserved events
    /// and commits its offsets in one (default `at-least-once`).
    #[serde(default)]
    pub delivery: Delivery,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub shoppers: u32,
    pub products: u32,
    pub initial_stock: i64,
    pub orders: u32,
    /// Largest quantity of one order (drawn from 1 to this).
    #[serde(default = "default_max_qty")]
    pub max_qty: i64,
    /// How many times a shopper tries one order before giving up.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Share of paid orders the shopper refunds soon after (0 to 1). A refund
    /// is a second revision of the payment, so it is what ordering bugs act
    /// on.
    #[serde(default)]
    pub refunds: f64,
    /// Inventory consumers in the group.
    #[serde(default = "default_inventory_consumers")]
    pub inventory_consumers: u32,
}

fn default_max_qty() -> i64 {
    3
}

fn default_attempts() -> u32 {
    6
}

fn default_inventory_consumers() -> u32 {
    2
}

/// Pitfall 4: orders that carry an attachment (an invoice), and how it
/// travels to the archive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payloads {
    pub strategy: Strategy,
    /// The codec of the `compressed` strategy.
    #[serde(default = "default_codec")]
    pub codec: Codec,
    /// Share of orders that carry an attachment (0 to 1).
    #[serde(default = "default_share")]
    pub share: f64,
    /// Attachment sizes are drawn log-uniformly from `min_kib` to `max_kib`.
    #[serde(default = "default_min_kib")]
    pub min_kib: u64,
    #[serde(default = "default_max_kib")]
    pub max_kib: u64,
    /// Chunk size of the chunked strategies.
    #[serde(default = "default_chunk_kib")]
    pub chunk_kib: u64,
}

impl Payloads {
    /// The settings of the producer that sends attachments: the scenario's,
    /// with batch compression by `codec` under the `compressed` strategy.
    pub fn producer_config(&self, base: &ProducerConfig) -> ProducerConfig {
        ProducerConfig {
            compression: (self.strategy == Strategy::Compressed).then_some(self.codec),
            ..base.clone()
        }
    }
}

fn default_codec() -> Codec {
    Codec::Lz4
}

fn default_share() -> f64 {
    0.3
}

fn default_min_kib() -> u64 {
    16
}

fn default_max_kib() -> u64 {
    20 * 1024
}

fn default_chunk_kib() -> u64 {
    256
}

/// Pitfall 2: the orders service, its order-status view and how it keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Orders {
    pub model: OrdersModel,
    /// `event-sourced`: take a snapshot once this many events accumulated.
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every: u64,
}

fn default_snapshot_every() -> u64 {
    3
}

/// Pitfall 5 outside the DB: the inventory calls a third-party carrier once
/// per reservation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThirdParty {
    pub call: ThirdPartyCall,
}

/// The sections as the file has them.
#[derive(Deserialize)]
struct File {
    variants: Variants,
    workload: Spanned<Workload>,
    producer: Option<Spanned<ProducerConfig>>,
    payloads: Option<Spanned<Payloads>>,
    orders: Option<Spanned<Orders>>,
    third_party: Option<ThirdParty>,
}

/// The reference system as one scenario configures it.
#[derive(Clone, Debug, PartialEq)]
pub struct ShopConfig {
    pub variants: Variants,
    pub workload: Workload,
    /// Producer settings for the services that produce directly.
    pub producer: ProducerConfig,
    /// Pitfall 4: attachments, when the scenario has them.
    pub payloads: Option<Payloads>,
    /// Pitfall 2: the orders service, when the scenario has it.
    pub orders: Option<Orders>,
    /// Pitfall 5: the third-party call, when the scenario has it.
    pub third_party: Option<ThirdParty>,
    /// A plan's subset of the seed's orders (indices into the draw); all
    /// of them when unset.
    pub keep_orders: Option<Vec<u64>>,
}

impl ShopConfig {
    /// Component → variant name, as the history's run header records it.
    pub fn variant_names(&self) -> BTreeMap<String, String> {
        let v = &self.variants;
        let mut names = BTreeMap::from([
            ("producer".to_string(), v.producer.name().to_string()),
            ("consumer".to_string(), v.consumer.name().to_string()),
            ("context".to_string(), v.context.name().to_string()),
            ("ordering".to_string(), v.ordering.name().to_string()),
        ]);
        if v.delivery != Delivery::AtLeastOnce {
            names.insert("delivery".into(), v.delivery.name().into());
        }
        if let Some(p) = &self.payloads {
            names.insert("payloads".into(), p.strategy.name().into());
        }
        if let Some(o) = &self.orders {
            names.insert("orders".into(), o.model.name().into());
        }
        if let Some(t) = &self.third_party {
            names.insert("third-party".into(), t.call.name().into());
        }
        names
    }
}

/// Read and check the reference system's sections.
pub fn parse(file: &ScenarioText<'_>) -> Result<ShopConfig, InputError> {
    let f: File = file.parse()?;
    let w = f.workload.get_ref();
    let checks = [
        (
            (1..=64).contains(&w.shoppers),
            "workload.shoppers must be 1 to 64",
        ),
        (
            (1..=10_000).contains(&w.products),
            "workload.products must be 1 to 10000",
        ),
        (
            (1..=100_000).contains(&w.orders),
            "workload.orders must be 1 to 100000",
        ),
        (
            (0..=1_000_000_000).contains(&w.initial_stock),
            "workload.initial_stock must be 0 to 1000000000",
        ),
        (
            (1..=1000).contains(&w.max_qty),
            "workload.max_qty must be 1 to 1000",
        ),
        (
            (0.0..=1.0).contains(&w.refunds),
            "workload.refunds must be between 0 and 1",
        ),
        (
            (1..=100).contains(&w.attempts),
            "workload.attempts must be 1 to 100",
        ),
        (
            (1..=8).contains(&w.inventory_consumers),
            "workload.inventory_consumers must be 1 to 8",
        ),
    ];
    file.require(f.workload.span().start, &checks)?;
    let producer = file.checked_section(f.producer, ProducerConfig::check)?;
    let payloads = f.payloads.map(|p| check_payloads(file, p)).transpose()?;
    let orders = f
        .orders
        .map(|o| check_orders(file, o, f.variants.producer))
        .transpose()?;
    Ok(ShopConfig {
        variants: f.variants,
        workload: f.workload.into_inner(),
        producer,
        payloads,
        orders,
        third_party: f.third_party,
        keep_orders: None,
    })
}

fn check_payloads(file: &ScenarioText<'_>, p: Spanned<Payloads>) -> Result<Payloads, InputError> {
    let at = p.span().start;
    let p = p.into_inner();
    let checks = [
        (
            (0.0..=1.0).contains(&p.share),
            "payloads.share must be between 0 and 1",
        ),
        (
            p.min_kib >= 1 && p.min_kib <= p.max_kib,
            "payloads.min_kib must be at least 1 and at most max_kib",
        ),
        (
            p.max_kib <= 64 * 1024,
            "payloads.max_kib must be at most 65536 (64 MiB)",
        ),
        (
            (1..=1024).contains(&p.chunk_kib),
            "payloads.chunk_kib must be 1 to 1024",
        ),
    ];
    file.require(at, &checks)?;
    Ok(p)
}

fn check_orders(
    file: &ScenarioText<'_>,
    o: Spanned<Orders>,
    producer: Publish,
) -> Result<Orders, InputError> {
    let at = o.span().start;
    let o = o.into_inner();
    if !(1..=100).contains(&o.snapshot_every) {
        return Err(file.error_at(at, "orders.snapshot_every must be 1 to 100"));
    }
    if producer != Publish::Cdc {
        return Err(file.error_at(
            at,
            "[orders] needs variants.producer = \"cdc\": the orders service reads the payments, inventory and refunds change logs",
        ));
    }
    Ok(o)
}
