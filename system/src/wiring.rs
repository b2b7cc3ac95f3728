//! How each of the reference system's hosts starts, from the infrastructure a
//! mode hands it: written once, for the simulation and real mode alike.
//! Settings that must differ by mode do not live here: the real Kafka
//! adapter raises a session timeout below Apache Kafka's group minimum (see
//! `pitfall-real`'s `kafka` module).

use crate::config::ShopConfig;
use crate::services::archive::{self, Archive};
use crate::services::carrier::{Carrier, CarrierClient, ShipCall};
use crate::services::inventory::{ReserveStock, Reserved, GROUP};
use crate::services::notifier;
use crate::services::orders::translator::Translator;
use crate::services::orders::{self, OrdersCall, OrdersService};
use crate::services::payments::{PayloadOutlet, PaymentsCall, PaymentsService};
use crate::topology::*;
use crate::variants::{Delivery, Idempotency, OrdersModel};
use crate::workload::{draw_orders, shopper, Order};
use futures_util::future::join_all;
use pitfall_blocks::cdc::{CdcConfig, CdcConnector};
use pitfall_blocks::consume::ConsumerLoop;
use pitfall_blocks::eos::{EosConfig, EosLoop};
use pitfall_blocks::recovery::Recovery;
use pitfall_blocks::relay::{OutboxRelay, RelayConfig};
use pitfall_harness::rpc;
use pitfall_harness::scenario::RunParams;
use pitfall_harness::system::{Client, ClientCtx, Config, HostFuture, Infra, Topology};
use pitfall_ports::{ConsumerConfig, Database, MAX_MESSAGE_BYTES};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A consumer's session timeout, and how many records it takes per poll.
const SESSION_TIMEOUT_MS: u64 = 2_000;
const MAX_POLL_RECORDS: usize = 10;
/// How often the recovery service looks for parked records.
const RECOVERY_INTERVAL: Duration = Duration::from_millis(500);
/// The transactional inventory member's session timeout (Apache Kafka's
/// `group.min.session.timeout.ms`).
const EOS_SESSION_TIMEOUT_MS: u64 = 6_000;
/// How long a Kafka transaction may stay open before the broker aborts it
/// (Kafka's `transaction.timeout.ms` defaults to 60 s).
const TRANSACTION_TIMEOUT_MS: u64 = 10_000;
/// How often the shipping relay looks for new outbox rows.
const RELAY_POLL_INTERVAL: Duration = Duration::from_millis(100);

fn consumer(group: &str, topics: &[&str]) -> ConsumerConfig {
    ConsumerConfig {
        group: group.into(),
        topics: topics.iter().map(|t| t.to_string()).collect(),
        session_timeout_ms: SESSION_TIMEOUT_MS,
        max_poll_records: MAX_POLL_RECORDS,
        read_committed: false,
    }
}

impl Config for ShopConfig {
    fn variants(&self) -> BTreeMap<String, String> {
        self.variant_names()
    }

    fn topology(&self) -> Topology {
        Hosts::of(self).topology(self)
    }

    fn spawn(&self, host: &str, infra: &dyn Infra) -> HostFuture {
        match host {
            PAYMENTS => self.payments(infra),
            CDC => self.cdc(infra),
            RECOVERY => self.recovery(infra),
            ARCHIVE => self.archive(infra),
            ORDERS | ORDER_VIEW_HOST | TRANSLATOR => self.orders_host(host, infra),
            CARRIER => carrier(infra),
            SHIPPER => self.shipper(infra),
            NOTIFIER => Box::pin(notifier::run(
                infra.broker().consumer(&ConsumerConfig {
                    read_committed: true,
                    ..consumer(notifier::GROUP, &[crate::schema::RESERVED_TOPIC])
                }),
                infra.env(),
            )),
            inventory if inventory.starts_with("inventory-") => self.inventory(infra),
            other => panic!("the reference system has no host `{other}`"),
        }
    }

    fn workload(&self) -> BTreeMap<String, u64> {
        let w = &self.workload;
        BTreeMap::from([
            ("orders".to_string(), u64::from(w.orders)),
            ("shoppers".to_string(), u64::from(w.shoppers)),
            (
                "inventory_consumers".to_string(),
                u64::from(w.inventory_consumers),
            ),
        ])
    }

    fn items(&self) -> BTreeMap<String, u64> {
        BTreeMap::from([("orders".to_string(), u64::from(self.workload.orders))])
    }

    fn with_items(&self, items: &BTreeMap<String, Vec<u64>>) -> Result<Arc<dyn Config>, String> {
        let mut config = self.clone();
        for (kind, list) in items {
            if kind != "orders" {
                return Err(format!("unknown workload items `{kind}`, expected orders"));
            }
            let n = u64::from(self.workload.orders);
            if let Some(bad) = list.iter().find(|i| **i >= n) {
                return Err(format!(
                    "items.orders: order {bad} is not among the seed's {n} (0 to {})",
                    n - 1
                ));
            }
            config.keep_orders = Some(list.clone());
        }
        Ok(Arc::new(config))
    }

    fn with_workload(&self, sizes: &BTreeMap<String, u64>) -> Result<Arc<dyn Config>, String> {
        let mut config = self.clone();
        let w = &mut config.workload;
        for (name, &size) in sizes {
            let (field, most) = match name.as_str() {
                "orders" => (&mut w.orders, 100_000),
                "shoppers" => (&mut w.shoppers, 64),
                "inventory_consumers" => (&mut w.inventory_consumers, 8),
                other => {
                    return Err(format!(
                        "unknown workload size `{other}`, expected orders, shoppers or inventory_consumers"
                    ))
                }
            };
            if !(1..=most).contains(&size) {
                return Err(format!(
                    "workload size {name} must be 1 to {most}, not {size}"
                ));
            }
            *field = size as u32;
        }
        Ok(Arc::new(config))
    }

    fn clients(&self, seed: u64, run: &RunParams) -> Vec<Client> {
        let mut orders = draw_orders(seed, &self.workload, self.payloads.as_ref(), run.chaos_ms());
        if let Some(keep) = &self.keep_orders {
            let mut index = 0u64;
            orders.retain(|_| {
                index += 1;
                keep.contains(&(index - 1))
            });
        }
        let hosts = Hosts::of(self).shopper_hosts();
        hosts
            .into_iter()
            .enumerate()
            .map(|(i, name)| {
                let mine: Vec<Order> = orders
                    .iter()
                    .filter(|o| o.shopper == i as u32 + 1)
                    .cloned()
                    .collect();
                let attempts = self.workload.attempts;
                let place_orders = self.orders.is_some();
                let process = name.clone();
                Client {
                    name,
                    run: Box::new(move |ctx: ClientCtx| -> HostFuture {
                        Box::pin(async move {
                            shopper(
                                process,
                                mine,
                                attempts,
                                place_orders,
                                ctx.history,
                                ctx.rpc.as_ref(),
                            )
                            .await
                        })
                    }),
                }
            })
            .collect()
    }
}

impl ShopConfig {
    /// Payments: its front door, the DB, and per pitfall 1's variant a
    /// producer; the archive's attachments by pitfall 4's strategy.
    fn payments(&self, infra: &dyn Infra) -> HostFuture {
        let publish = self.variants.producer;
        let broker = infra.broker();
        let producer =
            (publish != crate::variants::Publish::Cdc).then(|| broker.producer(&self.producer));
        let mut service = PaymentsService::new(
            publish,
            infra.db(PAYMENTS_DB),
            infra.env(),
            producer,
            Some(infra.store()),
        );
        if let Some(p) = &self.payloads {
            service = service.with_payloads(PayloadOutlet {
                producer: broker.producer(&p.producer_config(&self.producer)),
                store: infra.store(),
                strategy: p.strategy,
                codec: p.codec,
                chunk_bytes: (p.chunk_kib * 1024) as usize,
                max_message_bytes: MAX_MESSAGE_BYTES,
            });
        }
        let service = Arc::new(service);
        Box::pin(rpc::serve(infra.listen(), move |call: PaymentsCall| {
            let service = service.clone();
            async move { service.call(call).await }
        }))
    }

    /// The CDC connectors, one per captured DB, sharing one producer like
    /// connectors of one Kafka Connect worker.
    fn cdc(&self, infra: &dyn Infra) -> HostFuture {
        let producer = infra.broker().producer(&self.producer);
        let env = infra.env();
        let propagate_context = self.variants.context.propagates();
        let connectors: Vec<_> = Hosts::of(self)
            .cdc_connectors()
            .into_iter()
            .map(|(db, config)| {
                let config = CdcConfig {
                    propagate_context,
                    ..config
                };
                CdcConnector::new(infra.feed(db), producer.clone(), env.clone(), config).run()
            })
            .collect();
        Box::pin(async move {
            join_all(connectors).await;
        })
    }

    fn recovery(&self, infra: &dyn Infra) -> HostFuture {
        let recovery = Recovery::new(
            infra.broker().producer(&self.producer),
            infra.store(),
            infra.env(),
            RECOVERY_INTERVAL,
        )
        .propagate_context(self.variants.context.propagates());
        Box::pin(recovery.run())
    }

    /// An inventory member: reserve stock for each payment event (and ship
    /// it, with a third-party carrier).
    fn inventory(&self, infra: &dyn Infra) -> HostFuture {
        let env = infra.env();
        let topic = self.variants.producer.topic();
        let reserve = ReserveStock::new(env.clone(), self.variants.ordering)
            .shipping(self.carrier_client(infra));
        if self.variants.delivery == Delivery::KafkaEos {
            let config = EosConfig {
                // A transaction spans the whole poll, and a member heartbeats
                // only between polls: Apache Kafka's minimum session timeout,
                // so one slow batch does not expel it.
                consumer: ConsumerConfig {
                    session_timeout_ms: EOS_SESSION_TIMEOUT_MS,
                    ..consumer(GROUP, &[topic])
                },
                producer: self.producer.clone(),
                transactional_id: infra.host().to_string(),
                transaction_timeout_ms: TRANSACTION_TIMEOUT_MS,
            };
            let eos = EosLoop::new(
                infra.broker(),
                config,
                infra.db(INVENTORY_DB),
                Arc::new(reserve),
                Arc::new(Reserved),
                env,
                self.variants.consumer,
            );
            return Box::pin(eos.run());
        }
        let consumer_loop = ConsumerLoop::new(
            infra.broker().consumer(&consumer(GROUP, &[topic])),
            infra.db(INVENTORY_DB),
            Arc::new(reserve),
            env,
            self.variants.consumer,
        );
        Box::pin(consumer_loop.run())
    }

    /// The client of the carrier, when the scenario has one.
    fn carrier_client(&self, infra: &dyn Infra) -> Option<CarrierClient> {
        let t = self.third_party.as_ref()?;
        Some(CarrierClient {
            rpc: infra.rpc(),
            env: infra.env(),
            host: CARRIER.into(),
            call: t.call,
        })
    }

    /// `outbox`: the relay that ships each outbox row through the carrier.
    fn shipper(&self, infra: &dyn Infra) -> HostFuture {
        let client = self
            .carrier_client(infra)
            .expect("the shipper runs only with [third_party]");
        let config = RelayConfig {
            slot: crate::schema::SHIPPER_SLOT.into(),
            table: crate::schema::SHIP_OUTBOX.into(),
            poll_interval: RELAY_POLL_INTERVAL,
            batch: 16,
        };
        let relay = OutboxRelay::new(
            infra.feed(INVENTORY_DB),
            Arc::new(client),
            infra.env(),
            config,
        );
        Box::pin(relay.run())
    }

    /// The archive: reassemble attachments and store each once.
    fn archive(&self, infra: &dyn Infra) -> HostFuture {
        let strategy = self
            .payloads
            .as_ref()
            .map(|p| p.strategy)
            .expect("the archive runs only with payloads");
        let broker = infra.broker();
        let consumer = broker.consumer(&ConsumerConfig {
            group: archive::GROUP.into(),
            topics: vec![crate::schema::INVOICES_TOPIC.into()],
            // Reassembling a 20 MiB attachment takes many DB or broker round
            // trips between polls: few records per poll, and a session long
            // enough not to be expelled meanwhile.
            session_timeout_ms: archive::SESSION_TIMEOUT_MS,
            max_poll_records: archive::MAX_POLL_RECORDS,
            read_committed: false,
        });
        let db: Arc<dyn Database> = infra.db(INVENTORY_DB);
        let reassembler =
            archive::reassembler(strategy, db.clone(), infra.store(), broker.reader())
                .marking(infra.env());
        Box::pin(Archive::new(consumer, db, reassembler, infra.env()).run())
    }

    /// Pitfall 2's hosts: the orders service (its front door, its consumer
    /// of the payments, inventory and refunds topics, and under
    /// `event-sourced` its snapshotter), the order-view projection and,
    /// under `crud-cdc`, the translator.
    fn orders_host(&self, host: &str, infra: &dyn Infra) -> HostFuture {
        let o = self
            .orders
            .as_ref()
            .expect("orders hosts run only with [orders]");
        let model = o.model;
        let env = infra.env();
        let broker = infra.broker();
        match host {
            ORDERS => {
                let db = infra.db(ORDERS_DB);
                let (service, snapshotter) =
                    OrdersService::new(model, db.clone(), env.clone(), o.snapshot_every);
                let service = Arc::new(service);
                let topics = orders::tracked_topics(self.variants.producer.topic());
                let tracker = ConsumerLoop::new(
                    broker.consumer(&consumer(orders::GROUP, &topics)),
                    db,
                    service.clone(),
                    env,
                    Idempotency::DedupeEventId,
                );
                let front = rpc::serve(infra.listen(), move |call: OrdersCall| {
                    let service = service.clone();
                    async move { service.call(call).await }
                });
                Box::pin(async move {
                    let snapshots = async move {
                        if let Some(s) = snapshotter {
                            s.run().await;
                        }
                    };
                    tokio::join!(tracker.run(), snapshots, front);
                })
            }
            ORDER_VIEW_HOST => Box::pin(
                ConsumerLoop::new(
                    broker.consumer(&consumer(orders::view::GROUP, &[model.view_topic()])),
                    infra.db(ORDERS_DB),
                    Arc::new(orders::view::Project),
                    env,
                    Idempotency::DedupeEventId,
                )
                .run(),
            ),
            _ => {
                debug_assert_eq!(model, OrdersModel::CrudCdc);
                let topic = crate::schema::ORDERS_CDC_TOPIC;
                Box::pin(
                    Translator::new(
                        broker.consumer(&consumer(orders::translator::GROUP, &[topic])),
                        broker.producer(&self.producer),
                        env,
                    )
                    .run(),
                )
            }
        }
    }
}

/// The third-party carrier: its front door over its own DB.
fn carrier(infra: &dyn Infra) -> HostFuture {
    let carrier = Arc::new(Carrier::new(infra.db(CARRIER_DB), infra.env()));
    Box::pin(rpc::serve(infra.listen(), move |call: ShipCall| {
        let carrier = carrier.clone();
        async move { carrier.ship(call).await }
    }))
}
