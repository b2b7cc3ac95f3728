//! The reference system's hosts and which of them talk to each other, for a
//! given set of variants, and the [`Topology`] the harness gets from them:
//! DBs with their tables, topics, services, shoppers, links, drain probes
//! and crash groups.

use crate::config::ShopConfig;
use crate::connectors;
use crate::schema::{
    self, EFFECTS, EFFECTS_CDC_TOPIC, FALLBACK_PREFIX, INVOICES, INVOICES_TOPIC, ORDERS_CDC_TOPIC,
    ORDER_EVENTS, ORDER_EVENTS_CDC_TOPIC, ORDER_EVENTS_TOPIC, ORDER_SNAPSHOTS, ORDER_VIEW,
    PAYMENTS_CDC_TOPIC, PAYMENTS_TOPIC, PROCESSED, REFUNDS, REFUNDS_CDC_TOPIC, REJECTIONS,
    RELEASES, RESERVATIONS, RESERVED_TOPIC, SHIPMENTS, SHIPMENT_KEYS, SHIPPER_SLOT, SHIP_OUTBOX,
    STOCK,
};
use crate::services::{archive, inventory, notifier, orders};
use crate::variants::{Delivery, OrdersModel, Publish, ThirdPartyCall};
use crate::workload::product_name;
use pitfall_blocks::cdc::CdcConfig;
use pitfall_blocks::payload::CHUNKS;
use pitfall_harness::system::{CrashGroup, DbSpec, Probe, SeedRow, Topology, BROKER, STORE};

pub const PAYMENTS_DB: &str = "payments-db";
pub const INVENTORY_DB: &str = "inventory-db";
/// The orders service's DB (pitfall 2).
pub const ORDERS_DB: &str = "orders-db";
pub const PAYMENTS: &str = "payments";
pub const CDC: &str = "cdc";
pub const RECOVERY: &str = "recovery";
/// The archive service (pitfall 4), which stores orders' attachments. Its
/// tables live in the inventory DB server.
pub const ARCHIVE: &str = "archive";
/// Pitfall 2: the orders service (RPC front, the consumer of the payments,
/// inventory and refunds topics, and the event-sourced snapshotter).
pub const ORDERS: &str = "orders";
/// The order-view projection.
pub const ORDER_VIEW_HOST: &str = "order-view";
/// `crud-cdc`'s translator from the raw orders change log to official events.
pub const TRANSLATOR: &str = "translator";
/// Pitfall 5 outside the DB: the third-party carrier API, its own DB, and
/// (`outbox`) the relay that calls it from the inventory's outbox.
pub const CARRIER: &str = "carrier";
pub const CARRIER_DB: &str = "carrier-db";
pub const SHIPPER: &str = "shipper";
/// `kafka-eos`: the reader of inventory's transactional output.
pub const NOTIFIER: &str = "notifier";

/// The topics pitfall 2 adds: the refunds and inventory change logs the
/// orders service reads, and the orders model's own.
pub const ORDERS_TOPICS: [&str; 5] = [
    REFUNDS_CDC_TOPIC,
    EFFECTS_CDC_TOPIC,
    ORDERS_CDC_TOPIC,
    ORDER_EVENTS_TOPIC,
    ORDER_EVENTS_CDC_TOPIC,
];

/// The payments DB's tables.
const PAYMENTS_TABLES: [&str; 2] = [schema::PAYMENTS, REFUNDS];
/// The inventory DB's tables, the archive's included.
const INVENTORY_TABLES: [&str; 8] = [
    STOCK,
    RESERVATIONS,
    REJECTIONS,
    RELEASES,
    EFFECTS,
    PROCESSED,
    INVOICES,
    CHUNKS,
];
/// The orders DB's tables (pitfall 2).
const ORDERS_TABLES: [&str; 5] = [
    schema::ORDERS,
    ORDER_EVENTS,
    ORDER_SNAPSHOTS,
    ORDER_VIEW,
    PROCESSED,
];

/// Which of the reference system's hosts run, for a set of variants.
#[derive(Clone, Debug, PartialEq)]
pub struct Hosts {
    pub publish: Publish,
    pub inventory_members: u32,
    pub shoppers: u32,
    /// Whether orders carry attachments, so the archive runs.
    pub archive: bool,
    /// Pitfall 2: the orders service's model, when it runs.
    pub orders: Option<OrdersModel>,
    /// Pitfall 5: how the inventory calls the carrier, when it does.
    pub third_party: Option<ThirdPartyCall>,
    /// Pitfall 5: how the inventory commits its progress.
    pub delivery: Delivery,
}

impl Hosts {
    pub fn of(cfg: &ShopConfig) -> Hosts {
        Hosts {
            publish: cfg.variants.producer,
            inventory_members: cfg.workload.inventory_consumers,
            shoppers: cfg.workload.shoppers,
            archive: cfg.payloads.is_some(),
            orders: cfg.orders.as_ref().map(|o| o.model),
            third_party: cfg.third_party.as_ref().map(|t| t.call),
            delivery: cfg.variants.delivery,
        }
    }

    /// `kafka-eos`: the notifier.
    pub fn notifier(&self) -> Option<&'static str> {
        (self.delivery == Delivery::KafkaEos).then_some(NOTIFIER)
    }

    /// The carrier and, under `outbox`, its relay.
    pub fn third_party_hosts(&self) -> Vec<String> {
        match self.third_party {
            None => Vec::new(),
            Some(ThirdPartyCall::Outbox) => vec![CARRIER.into(), SHIPPER.into()],
            Some(_) => vec![CARRIER.into()],
        }
    }

    fn outbox(&self) -> bool {
        self.third_party == Some(ThirdPartyCall::Outbox)
    }

    /// The DB servers.
    pub fn dbs(&self) -> Vec<&'static str> {
        let mut dbs = vec![PAYMENTS_DB, INVENTORY_DB];
        if self.orders.is_some() {
            dbs.push(ORDERS_DB);
        }
        if self.third_party.is_some() {
            dbs.push(CARRIER_DB);
        }
        dbs
    }

    /// The orders service's hosts: the service, the view, and (crud-cdc)
    /// the translator.
    pub fn orders_hosts(&self) -> Vec<String> {
        match self.orders {
            None => Vec::new(),
            Some(OrdersModel::EventSourced) => vec![ORDERS.into(), ORDER_VIEW_HOST.into()],
            Some(OrdersModel::CrudCdc) => {
                vec![ORDERS.into(), ORDER_VIEW_HOST.into(), TRANSLATOR.into()]
            }
        }
    }

    pub fn archive(&self) -> Option<&'static str> {
        self.archive.then_some(ARCHIVE)
    }

    /// The hosts that consume in a group and may crash between applying an
    /// effect and committing its offset.
    pub fn consumer_hosts(&self) -> Vec<String> {
        let mut hosts = self.inventory_hosts();
        hosts.extend(self.archive().map(String::from));
        hosts.extend(self.orders_hosts());
        hosts
    }

    pub fn cdc(&self) -> Option<&'static str> {
        (self.publish == Publish::Cdc).then_some(CDC)
    }

    pub fn recovery(&self) -> Option<&'static str> {
        (self.publish == Publish::ResilientProducer).then_some(RECOVERY)
    }

    pub fn inventory_hosts(&self) -> Vec<String> {
        (1..=self.inventory_members)
            .map(|i| format!("inventory-{i}"))
            .collect()
    }

    pub fn shopper_hosts(&self) -> Vec<String> {
        (1..=self.shoppers)
            .map(|i| format!("shopper-{i}"))
            .collect()
    }

    /// Every host that runs service software (restartable).
    pub fn services(&self) -> Vec<String> {
        let mut hosts = vec![PAYMENTS.to_string()];
        hosts.extend(self.cdc().map(String::from));
        hosts.extend(self.recovery().map(String::from));
        hosts.extend(self.consumer_hosts());
        hosts.extend(self.third_party_hosts());
        hosts.extend(self.notifier().map(String::from));
        hosts
    }

    /// The CDC connectors of the `cdc` host, each with the DB it captures:
    /// one per DB, like connectors sharing a Kafka Connect worker (they crash
    /// together). With the orders service, the payments connector also
    /// captures refunds, and the inventory and orders DBs get theirs.
    pub fn cdc_connectors(&self) -> Vec<(&'static str, CdcConfig)> {
        match (self.cdc(), self.orders) {
            (None, _) => Vec::new(),
            (Some(_), None) => vec![(PAYMENTS_DB, connectors::payments())],
            (Some(_), Some(model)) => vec![
                (PAYMENTS_DB, connectors::payments_with_refunds()),
                (INVENTORY_DB, connectors::inventory()),
                (ORDERS_DB, connectors::orders(model)),
            ],
        }
    }

    /// Links that carry traffic, as (client, server) pairs: what a partition
    /// can cut.
    pub fn links(&self) -> Vec<(String, String)> {
        let mut links: Vec<(String, String)> = vec![(PAYMENTS.into(), PAYMENTS_DB.into())];
        if self.publish != Publish::Cdc || self.archive {
            links.push((PAYMENTS.into(), BROKER.into()));
        }
        if let Some(archive) = self.archive() {
            if self.publish != Publish::ResilientProducer {
                links.push((PAYMENTS.into(), STORE.into()));
            }
            links.push((archive.into(), BROKER.into()));
            links.push((archive.into(), INVENTORY_DB.into()));
            links.push((archive.into(), STORE.into()));
        }
        if self.publish == Publish::ResilientProducer {
            links.push((PAYMENTS.into(), STORE.into()));
            links.push((RECOVERY.into(), STORE.into()));
            links.push((RECOVERY.into(), BROKER.into()));
        }
        if self.publish == Publish::Cdc {
            links.push((CDC.into(), PAYMENTS_DB.into()));
            links.push((CDC.into(), BROKER.into()));
        }
        if self.orders.is_some() {
            links.push((CDC.into(), INVENTORY_DB.into()));
            links.push((CDC.into(), ORDERS_DB.into()));
            for host in self.orders_hosts() {
                links.push((host.clone(), BROKER.into()));
                if host != TRANSLATOR {
                    links.push((host, ORDERS_DB.into()));
                }
            }
        }
        for inv in self.inventory_hosts() {
            links.push((inv.clone(), BROKER.into()));
            links.push((inv, INVENTORY_DB.into()));
        }
        if self.third_party.is_some() {
            links.push((CARRIER.into(), CARRIER_DB.into()));
            let callers = if self.outbox() {
                links.push((SHIPPER.into(), INVENTORY_DB.into()));
                vec![SHIPPER.to_string()]
            } else {
                self.inventory_hosts()
            };
            links.extend(callers.into_iter().map(|c| (c, CARRIER.to_string())));
        }
        if let Some(n) = self.notifier() {
            links.push((n.into(), BROKER.into()));
        }
        for shopper in self.shopper_hosts() {
            links.push((shopper.clone(), PAYMENTS.into()));
            if self.orders.is_some() {
                links.push((shopper, ORDERS.into()));
            }
        }
        links
    }

    /// Pitfall 2's consumer groups and the topics each must catch up on.
    pub fn orders_consumers(&self) -> Vec<(&'static str, &'static str)> {
        let Some(model) = self.orders else {
            return Vec::new();
        };
        let mut groups: Vec<(&'static str, &'static str)> =
            orders::tracked_topics(self.publish.topic())
                .into_iter()
                .map(|topic| (orders::GROUP, topic))
                .collect();
        groups.push((orders::view::GROUP, model.view_topic()));
        if model == OrdersModel::CrudCdc {
            groups.push((orders::translator::GROUP, ORDERS_CDC_TOPIC));
        }
        groups
    }

    /// What the drain waits for: every group caught up, every connector's
    /// slot confirmed, nothing parked.
    fn probes(&self) -> Vec<Probe> {
        let lag = |label: &str, group: &str, topic: &str| Probe::Lag {
            label: label.into(),
            group: group.into(),
            topic: topic.into(),
        };
        let mut probes = vec![lag("inventory", inventory::GROUP, self.publish.topic())];
        if self.archive {
            probes.push(lag(archive::GROUP, archive::GROUP, INVOICES_TOPIC));
        }
        if self.notifier().is_some() {
            probes.push(lag(notifier::GROUP, notifier::GROUP, RESERVED_TOPIC));
        }
        for (group, topic) in self.orders_consumers() {
            probes.push(lag(group, group, topic));
        }
        for (db, config) in self.cdc_connectors() {
            probes.push(Probe::Feed {
                db: db.into(),
                slot: config.slot.clone(),
                tables: config.routes.iter().map(|(t, _)| t.clone()).collect(),
            });
        }
        if self.outbox() {
            probes.push(Probe::Feed {
                db: INVENTORY_DB.into(),
                slot: SHIPPER_SLOT.into(),
                tables: vec![SHIP_OUTBOX.into()],
            });
        }
        if self.publish == Publish::ResilientProducer {
            probes.push(Probe::Empty {
                prefix: FALLBACK_PREFIX.into(),
                what: "record(s) parked in the object store".into(),
            });
        }
        probes
    }

    /// The named crash faults, kept from before crashes were generic. A
    /// group whose host does not run here is empty, so the fault does not
    /// apply.
    fn crash_groups(&self) -> Vec<CrashGroup> {
        let group = |name: &str, describe: &str, hosts: Vec<String>| CrashGroup {
            name: name.into(),
            describe: describe.into(),
            hosts,
        };
        vec![
            group(
                "crash-payments",
                "the payments service crashes and restarts",
                vec![PAYMENTS.into()],
            ),
            group(
                "crash-cdc",
                "the CDC connector crashes and restarts",
                self.cdc().map(String::from).into_iter().collect(),
            ),
            group(
                "crash-recovery",
                "the recovery service crashes and restarts",
                self.recovery().map(String::from).into_iter().collect(),
            ),
            group(
                "crash-inventory",
                "a consumer (an inventory member, the archive, or an orders host) crashes and restarts",
                self.consumer_hosts(),
            ),
        ]
    }

    /// The DBs, with their tables, the stock the inventory starts with and
    /// the slots the connectors read.
    fn db_specs(&self, cfg: &ShopConfig) -> Vec<DbSpec> {
        let mut readers: Vec<(&str, String)> = self
            .cdc_connectors()
            .into_iter()
            .map(|(db, c)| (db, c.slot))
            .collect();
        if self.outbox() {
            readers.push((INVENTORY_DB, SHIPPER_SLOT.into()));
        }
        let slots = |db: &str| -> Vec<String> {
            readers
                .iter()
                .filter(|(d, _)| *d == db)
                .map(|(_, slot)| slot.clone())
                .collect()
        };
        let tables = |names: &[&str]| names.iter().map(|t| t.to_string()).collect();
        let stock = (0..cfg.workload.products)
            .map(|i| SeedRow {
                table: STOCK.into(),
                key: product_name(i),
                data: serde_json::json!({ "available": cfg.workload.initial_stock }),
            })
            .collect();
        let mut inventory_tables: Vec<String> = tables(&INVENTORY_TABLES);
        if self.outbox() {
            inventory_tables.push(SHIP_OUTBOX.into());
        }
        let mut dbs = vec![
            DbSpec {
                name: PAYMENTS_DB.into(),
                tables: tables(&PAYMENTS_TABLES),
                rows: Vec::new(),
                slots: slots(PAYMENTS_DB),
            },
            DbSpec {
                name: INVENTORY_DB.into(),
                tables: inventory_tables,
                rows: stock,
                slots: slots(INVENTORY_DB),
            },
        ];
        if self.orders.is_some() {
            dbs.push(DbSpec {
                name: ORDERS_DB.into(),
                tables: tables(&ORDERS_TABLES),
                rows: Vec::new(),
                slots: slots(ORDERS_DB),
            });
        }
        if self.third_party.is_some() {
            dbs.push(DbSpec {
                name: CARRIER_DB.into(),
                tables: tables(&[SHIPMENTS, SHIPMENT_KEYS]),
                rows: Vec::new(),
                slots: Vec::new(),
            });
        }
        dbs
    }

    /// The topology the harness runs.
    pub fn topology(&self, cfg: &ShopConfig) -> Topology {
        let mut topics: Vec<String> = [PAYMENTS_TOPIC, PAYMENTS_CDC_TOPIC, INVOICES_TOPIC]
            .map(String::from)
            .to_vec();
        if self.orders.is_some() {
            topics.extend(ORDERS_TOPICS.map(String::from));
        }
        if self.notifier().is_some() {
            topics.push(RESERVED_TOPIC.into());
        }
        Topology {
            dbs: self.db_specs(cfg),
            topics,
            services: self.services(),
            clients: self.shopper_hosts(),
            links: self.links(),
            probes: self.probes(),
            crash_groups: self.crash_groups(),
        }
    }
}
