//! Builds the turmoil world for one scenario and seed: the simulated servers
//! (two DBs, the broker, the object store), the service hosts with their
//! simulated adapters, and the shopper clients.

use crate::adapters::broker::SimBroker;
use crate::adapters::db::SimDb;
use crate::adapters::env::SimEnv;
use crate::adapters::store::SimStore;
use crate::faults::DrawnConfig;
use crate::history::History;
use crate::scenario::Scenario;
use crate::seed;
use crate::servers::broker::{BrokerServer, BrokerState};
use crate::servers::db::{DbServer, DbState};
use crate::servers::store::{StoreServer, StoreState};
use crate::servers::ServerFaults;
use crate::topology::{self as t, Topology};
use crate::wire;
use crate::workload::{self, product_name, Order};
use pitfall_system::blocks::cdc::{CdcConfig, CdcConnector};
use pitfall_system::blocks::consume::ConsumerLoop;
use pitfall_system::blocks::recovery::Recovery;
use pitfall_system::ports::{Broker, ConsumerConfig, Database, Env, ProducerConfig};
use pitfall_system::schema::{
    EFFECTS_CDC_TOPIC, INVOICES_TOPIC, ORDERS_CDC_TOPIC, ORDER_EVENTS_CDC_TOPIC,
    ORDER_EVENTS_TOPIC, PAYMENTS_CDC_TOPIC, PAYMENTS_TOPIC, REFUNDS_CDC_TOPIC, STOCK,
};
use pitfall_system::services::archive::{self, Archive};
use pitfall_system::services::inventory::{ReserveStock, GROUP};
use pitfall_system::services::orders::translator::Translator;
use pitfall_system::services::orders::{self, OrdersCall, OrdersService};
use pitfall_system::services::payments::{PayloadOutlet, PaymentsCall, PaymentsService};
use pitfall_system::variants::{Idempotency, OrdersModel, Publish};

/// The topics pitfall 2 adds: the refunds and inventory change logs the
/// orders service reads, and the orders model's own.
pub const ORDERS_TOPICS: [&str; 5] = [
    REFUNDS_CDC_TOPIC,
    EFFECTS_CDC_TOPIC,
    ORDERS_CDC_TOPIC,
    ORDER_EVENTS_TOPIC,
    ORDER_EVENTS_CDC_TOPIC,
];
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};
use turmoil::net::TcpListener;

/// The world of one seed, with handles the runner uses to inject faults and
/// observe convergence.
pub struct World<'a> {
    pub sim: turmoil::Sim<'a>,
    pub history: History,
    pub topology: Topology,
    pub dbs: BTreeMap<String, DbServer>,
    pub broker: BrokerServer,
    pub store: StoreServer,
    pub consumed_topic: String,
    pub partitions: u32,
}

/// A fresh seeded environment per host incarnation, so a restarted service
/// does not replay its predecessor's random choices.
fn env_factory(seed_value: u64, host: &str) -> impl Fn() -> Arc<dyn Env> {
    let incarnation = Rc::new(Cell::new(0u32));
    let host = host.to_string();
    move || {
        let n = incarnation.get();
        incarnation.set(n + 1);
        Arc::new(SimEnv::new(seed::rng(
            seed_value,
            &format!("host/{host}/{n}"),
        )))
    }
}

impl<'a> World<'a> {
    /// Build the world; everything it does is recorded into `history`.
    pub fn build(
        scenario: &Scenario,
        seed_value: u64,
        drawn: &DrawnConfig,
        time_limit: Duration,
        history: History,
    ) -> World<'a> {
        let topology = scenario.topology();
        let (min_lat, max_lat) = drawn.latency_ms;
        let mut sim = turmoil::Builder::new()
            .rng_seed(seed::sub_seed(seed_value, "network"))
            .epoch(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
            .simulation_duration(time_limit)
            .min_message_latency(Duration::from_millis(min_lat))
            .max_message_latency(Duration::from_millis(max_lat))
            .enable_random_order()
            .tick_duration(Duration::from_millis(scenario.run.tick_ms))
            .build();

        let faults =
            |host: &str| ServerFaults::shared(seed::rng(seed_value, &format!("server/{host}")));

        // Servers.
        let mut dbs = BTreeMap::new();
        for name in topology.dbs() {
            let name = name.as_str();
            let server = DbServer {
                name: name.to_string(),
                state: Arc::new(Mutex::new(DbState::default())),
                faults: faults(name),
                history: history.clone(),
            };
            let s = server.clone();
            sim.host(name.to_string(), move || s.clone().serve());
            dbs.insert(name.to_string(), server);
        }
        let stock = (0..scenario.workload.products)
            .map(|i| {
                let data = serde_json::json!({ "available": scenario.workload.initial_stock });
                (STOCK.to_string(), product_name(i), data)
            })
            .collect();
        dbs[t::INVENTORY_DB].seed(stock);

        let partitions = scenario.run.partitions;
        let mut broker_state = BrokerState::default();
        broker_state.create_topic(PAYMENTS_TOPIC, partitions);
        broker_state.create_topic(PAYMENTS_CDC_TOPIC, partitions);
        broker_state.create_topic(INVOICES_TOPIC, partitions);
        if topology.orders.is_some() {
            for topic in ORDERS_TOPICS {
                broker_state.create_topic(topic, partitions);
            }
        }
        let max_message_bytes = broker_state.max_message_bytes;
        let broker = BrokerServer {
            state: Arc::new(Mutex::new(broker_state)),
            faults: faults(t::BROKER),
            history: history.clone(),
        };
        let b = broker.clone();
        sim.host(t::BROKER, move || b.clone().serve());

        let store = StoreServer {
            state: Arc::new(Mutex::new(StoreState::default())),
            faults: faults(t::STORE),
            history: history.clone(),
        };
        let s = store.clone();
        sim.host(t::STORE, move || s.clone().serve());

        // Services.
        let publish = scenario.variants.producer;
        let context = scenario.variants.context;
        let producer_config = scenario.producer.clone();
        {
            let env = env_factory(seed_value, t::PAYMENTS);
            let history = history.clone();
            let producer_config = producer_config.clone();
            let payloads = scenario.payloads.clone();
            sim.host(t::PAYMENTS, move || {
                let env = env();
                let broker = SimBroker::new(t::BROKER, t::PAYMENTS, history.clone());
                let producer = (publish != Publish::Cdc).then(|| broker.producer(&producer_config));
                let store: Arc<dyn pitfall_system::ports::ObjectStore> =
                    Arc::new(SimStore::new(t::STORE));
                let mut service = PaymentsService::new(
                    publish,
                    Arc::new(SimDb::new(t::PAYMENTS_DB)),
                    env,
                    producer,
                    Some(store.clone()),
                );
                if let Some(p) = &payloads {
                    service = service.with_payloads(PayloadOutlet {
                        producer: broker.producer(&p.producer_config(&producer_config)),
                        store,
                        strategy: p.strategy,
                        codec: p.codec,
                        chunk_bytes: (p.chunk_kib * 1024) as usize,
                        max_message_bytes,
                    });
                }
                serve_payments(Arc::new(service))
            });
        }
        if let Some(host) = topology.cdc() {
            let env = env_factory(seed_value, host);
            let history = history.clone();
            let producer_config = producer_config.clone();
            let orders = topology.orders;
            sim.host(host, move || {
                let broker = SimBroker::new(t::BROKER, host, history.clone());
                let producer = broker.producer(&producer_config);
                let env = env();
                let mut tasks = Vec::new();
                for (db, config) in cdc_connectors(orders) {
                    let connector = CdcConnector::new(
                        Arc::new(SimDb::new(db)),
                        producer.clone(),
                        env.clone(),
                        CdcConfig {
                            propagate_context: context.propagates(),
                            ..config
                        },
                    );
                    tasks.push(tokio::task::spawn_local(connector.run()));
                }
                async move {
                    for task in tasks {
                        let _ = task.await;
                    }
                    Ok(())
                }
            });
        }
        if let Some(host) = topology.recovery() {
            let env = env_factory(seed_value, host);
            let history = history.clone();
            let producer_config = producer_config.clone();
            sim.host(host, move || {
                let broker = SimBroker::new(t::BROKER, host, history.clone());
                let recovery = Recovery::new(
                    broker.producer(&producer_config),
                    Arc::new(SimStore::new(t::STORE)),
                    env(),
                    Duration::from_millis(500),
                )
                .propagate_context(context.propagates());
                async move {
                    recovery.run().await;
                    Ok(())
                }
            });
        }
        let consumed_topic = publish.topic().to_string();
        for host in topology.inventory_hosts() {
            let env = env_factory(seed_value, &host);
            let history = history.clone();
            let idempotency = scenario.variants.consumer;
            let ordering = scenario.variants.ordering;
            let topic = consumed_topic.clone();
            let name = host.clone();
            sim.host(host.as_str(), move || {
                let env = env();
                let broker = SimBroker::new(t::BROKER, &name, history.clone());
                let consumer = broker.consumer(&ConsumerConfig {
                    group: GROUP.into(),
                    topics: vec![topic.clone()],
                    session_timeout_ms: 2_000,
                    max_poll_records: 10,
                });
                let handler = Arc::new(ReserveStock::new(env.clone(), ordering));
                let consumer_loop = ConsumerLoop::new(
                    consumer,
                    Arc::new(SimDb::new(t::INVENTORY_DB)),
                    handler,
                    env,
                    idempotency,
                );
                async move {
                    consumer_loop.run().await;
                    Ok(())
                }
            });
        }

        if let (Some(host), Some(p)) = (topology.archive(), &scenario.payloads) {
            let env = env_factory(seed_value, host);
            let history = history.clone();
            let strategy = p.strategy;
            sim.host(host, move || {
                let env = env();
                let broker = SimBroker::new(t::BROKER, host, history.clone());
                let consumer = broker.consumer(&ConsumerConfig {
                    group: archive::GROUP.into(),
                    topics: vec![INVOICES_TOPIC.into()],
                    // Reassembling a 20 MiB attachment takes many DB or broker
                    // round trips between polls: few records per poll, and a
                    // session long enough not to be expelled meanwhile.
                    session_timeout_ms: archive::SESSION_TIMEOUT_MS,
                    max_poll_records: archive::MAX_POLL_RECORDS,
                });
                let db: Arc<dyn Database> = Arc::new(SimDb::new(t::INVENTORY_DB));
                let reassembler = archive::reassembler(
                    strategy,
                    db.clone(),
                    Arc::new(SimStore::new(t::STORE)),
                    broker.reader(),
                );
                let service = Archive::new(consumer, db, reassembler, env);
                async move {
                    service.run().await;
                    Ok(())
                }
            });
        }

        if let (Some(model), Some(o)) = (topology.orders, &scenario.orders) {
            self::orders_hosts(
                &mut sim,
                seed_value,
                &history,
                model,
                o.snapshot_every,
                publish.topic(),
                &producer_config,
            );
        }

        // Shoppers.
        let orders = workload::draw_orders(
            seed_value,
            &scenario.workload,
            scenario.payloads.as_ref(),
            scenario.run.chaos_ms(),
        );
        for (i, host) in topology.shopper_hosts().into_iter().enumerate() {
            let mine: Vec<Order> = orders
                .iter()
                .filter(|o| o.shopper == i as u32 + 1)
                .cloned()
                .collect();
            sim.client(
                host.as_str(),
                workload::shopper(
                    host.clone(),
                    mine,
                    scenario.workload.attempts,
                    scenario.orders.is_some(),
                    history.clone(),
                    workload::TurmoilCheckout,
                ),
            );
        }

        World {
            sim,
            history,
            topology,
            dbs,
            broker,
            store,
            consumed_topic,
            partitions,
        }
    }
}

/// The CDC connectors of the `cdc` host, each with the DB it captures: one
/// per DB, like connectors sharing a Kafka Connect worker (they crash
/// together). With the orders service, the payments connector also captures
/// refunds, and the inventory and orders DBs get theirs.
pub fn cdc_connectors(orders: Option<OrdersModel>) -> Vec<(&'static str, CdcConfig)> {
    match orders {
        None => vec![(t::PAYMENTS_DB, CdcConfig::payments())],
        Some(model) => vec![
            (t::PAYMENTS_DB, CdcConfig::payments().with_refunds()),
            (t::INVENTORY_DB, CdcConfig::inventory()),
            (t::ORDERS_DB, CdcConfig::orders(model)),
        ],
    }
}

/// The payments service's RPC front.
async fn serve_payments(service: Arc<PaymentsService>) -> turmoil::Result {
    serve(t::PAYMENTS_PORT, move |call: PaymentsCall| {
        let service = service.clone();
        async move { service.call(call).await }
    })
    .await
}

/// An RPC front: one request per frame; each request is handled in its own
/// task, so a client that goes away does not cancel it.
async fn serve<C, R, F, Fut>(port: u16, handle: F) -> turmoil::Result
where
    C: serde::de::DeserializeOwned + 'static,
    R: serde::Serialize + 'static,
    F: Fn(C) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = R> + 'static,
{
    let listener = TcpListener::bind(("0.0.0.0", port)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let handle = handle.clone();
        tokio::task::spawn_local(async move {
            let mut conn = wire::framed(stream);
            while let Ok(Some(call)) = wire::recv::<C>(&mut conn).await {
                let handler = tokio::task::spawn_local(handle(call));
                let Ok(reply) = handler.await else { return };
                if wire::send(&mut conn, &reply).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Pitfall 2's hosts: the orders service (its RPC front, its consumer of
/// the payments, inventory and refunds topics, and under `event-sourced`
/// its snapshotter), the order-view projection and, under `crud-cdc`, the
/// translator.
fn orders_hosts(
    sim: &mut turmoil::Sim<'_>,
    seed_value: u64,
    history: &History,
    model: OrdersModel,
    snapshot_every: u64,
    payments_topic: &'static str,
    producer_config: &ProducerConfig,
) {
    let consumer = |group: &str, topics: Vec<&str>| ConsumerConfig {
        group: group.into(),
        topics: topics.into_iter().map(String::from).collect(),
        session_timeout_ms: 2_000,
        max_poll_records: 10,
    };
    {
        let env = env_factory(seed_value, t::ORDERS);
        let history = history.clone();
        let config = consumer(
            orders::GROUP,
            orders::tracked_topics(payments_topic).to_vec(),
        );
        sim.host(t::ORDERS, move || {
            let env = env();
            let db: Arc<dyn Database> = Arc::new(SimDb::new(t::ORDERS_DB));
            let (service, snapshotter) =
                OrdersService::new(model, db.clone(), env.clone(), snapshot_every);
            let service = Arc::new(service);
            let broker = SimBroker::new(t::BROKER, t::ORDERS, history.clone());
            let tracker = ConsumerLoop::new(
                broker.consumer(&config),
                db,
                service.clone(),
                env,
                Idempotency::DedupeEventId,
            );
            tokio::task::spawn_local(tracker.run());
            if let Some(snapshotter) = snapshotter {
                tokio::task::spawn_local(snapshotter.run());
            }
            serve(t::ORDERS_PORT, move |call: OrdersCall| {
                let service = service.clone();
                async move { service.call(call).await }
            })
        });
    }
    {
        let env = env_factory(seed_value, t::ORDER_VIEW);
        let history = history.clone();
        let config = consumer(orders::view::GROUP, vec![model.view_topic()]);
        sim.host(t::ORDER_VIEW, move || {
            let env = env();
            let broker = SimBroker::new(t::BROKER, t::ORDER_VIEW, history.clone());
            let projection = ConsumerLoop::new(
                broker.consumer(&config),
                Arc::new(SimDb::new(t::ORDERS_DB)),
                Arc::new(orders::view::Project),
                env,
                Idempotency::DedupeEventId,
            );
            async move {
                projection.run().await;
                Ok(())
            }
        });
    }
    if model == OrdersModel::CrudCdc {
        let env = env_factory(seed_value, t::TRANSLATOR);
        let history = history.clone();
        let config = consumer(orders::translator::GROUP, vec![ORDERS_CDC_TOPIC]);
        let producer_config = producer_config.clone();
        sim.host(t::TRANSLATOR, move || {
            let broker = SimBroker::new(t::BROKER, t::TRANSLATOR, history.clone());
            let translator = Translator::new(
                broker.consumer(&config),
                broker.producer(&producer_config),
                env(),
            );
            async move {
                translator.run().await;
                Ok(())
            }
        });
    }
}
