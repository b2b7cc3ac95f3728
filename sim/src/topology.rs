//! The simulated world's hosts and which of them talk to each other, for a
//! given set of variants.

use pitfall_system::variants::{OrdersModel, Publish};

pub const PAYMENTS_DB: &str = "payments-db";
pub const INVENTORY_DB: &str = "inventory-db";
/// The orders service's DB (pitfall 2).
pub const ORDERS_DB: &str = "orders-db";
pub const BROKER: &str = "broker";
pub const STORE: &str = "objstore";
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
pub const ORDER_VIEW: &str = "order-view";
/// `crud-cdc`'s translator from the raw orders change log to official events.
pub const TRANSLATOR: &str = "translator";
/// The payments service's RPC port.
pub const PAYMENTS_PORT: u16 = 8080;
/// The orders service's RPC port.
pub const ORDERS_PORT: u16 = 8081;

#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    pub publish: Publish,
    pub inventory_members: u32,
    pub shoppers: u32,
    /// Whether orders carry attachments, so the archive runs.
    pub archive: bool,
    /// Pitfall 2: the orders service's model, when it runs.
    pub orders: Option<OrdersModel>,
}

impl Topology {
    pub fn new(publish: Publish, inventory_members: u32, shoppers: u32) -> Self {
        Topology {
            publish,
            inventory_members,
            shoppers,
            archive: false,
            orders: None,
        }
    }

    pub fn with_orders(mut self, orders: Option<OrdersModel>) -> Self {
        self.orders = orders;
        self
    }

    /// The DB servers.
    pub fn dbs(&self) -> Vec<String> {
        let mut dbs = vec![PAYMENTS_DB.to_string(), INVENTORY_DB.to_string()];
        if self.orders.is_some() {
            dbs.push(ORDERS_DB.into());
        }
        dbs
    }

    /// The orders service's hosts: the service, the view, and (crud-cdc)
    /// the translator.
    pub fn orders_hosts(&self) -> Vec<String> {
        match self.orders {
            None => Vec::new(),
            Some(OrdersModel::EventSourced) => vec![ORDERS.into(), ORDER_VIEW.into()],
            Some(OrdersModel::CrudCdc) => {
                vec![ORDERS.into(), ORDER_VIEW.into(), TRANSLATOR.into()]
            }
        }
    }

    pub fn with_archive(mut self, archive: bool) -> Self {
        self.archive = archive;
        self
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

    pub fn servers(&self) -> Vec<String> {
        let mut servers = self.dbs();
        servers.extend([BROKER, STORE].map(String::from));
        servers
    }

    /// Every host that runs service software (restartable).
    pub fn services(&self) -> Vec<String> {
        let mut hosts = vec![PAYMENTS.to_string()];
        hosts.extend(self.cdc().map(String::from));
        hosts.extend(self.recovery().map(String::from));
        hosts.extend(self.consumer_hosts());
        hosts
    }

    /// Every host, servers, services and shoppers.
    pub fn all_hosts(&self) -> Vec<String> {
        let mut hosts = self.servers();
        hosts.extend(self.services());
        hosts.extend(self.shopper_hosts());
        hosts
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
        for shopper in self.shopper_hosts() {
            links.push((shopper.clone(), PAYMENTS.into()));
            if self.orders.is_some() {
                links.push((shopper, ORDERS.into()));
            }
        }
        links
    }
}
