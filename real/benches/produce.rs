//! Real-mode produce throughput: raw rdkafka against the building blocks
//! (the `Producer` port adapter with context headers, and the resilient
//! producer on top of it), in one run, to the same broker through the same
//! fault proxy (healthy). A benchmark: it asserts nothing and prints figures.
//!
//! Needs the local services (`scripts/services.sh start`).
//! `cargo bench -p pitfall-real --bench produce` (env `PITFALL_BENCH_RECORDS`,
//! default 20000).

use futures_util::future::join_all;
use pitfall_blocks::publish::{self, ResilientProducer};
use pitfall_harness::history::History;
use pitfall_harness::seed;
use pitfall_ports::context::RequestContext;
use pitfall_ports::{Broker, Env, ProducerConfig};
use pitfall_real::kafka::{producer_settings, KafkaAdmin, KafkaBroker};
use pitfall_real::names::RunNames;
use pitfall_real::proxy::FaultProxy;
use pitfall_real::store::{self, RealStore, SharedStoreFaults};
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use std::sync::Arc;
use std::time::Duration;

const BATCH: usize = 2_000;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

struct NoEnv;

#[async_trait::async_trait]
impl Env for NoEnv {
    fn now_ms(&self) -> u64 {
        0
    }
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
    fn random_u64(&self) -> u64 {
        0
    }
}

fn payload(i: usize) -> Vec<u8> {
    format!(r#"{{"payment_id":"pay-o{i}","order_id":"o{i}","product":"product-1","qty":2,"user_id":"u1","request_id":"r{i:08x}","revision":1}}"#)
        .into_bytes()
}

#[allow(clippy::disallowed_methods)] // a benchmark measures the wall clock
async fn timed<F: std::future::Future<Output = usize>>(label: &str, records: usize, f: F) -> f64 {
    let start = std::time::Instant::now();
    let ok = f.await;
    let secs = start.elapsed().as_secs_f64();
    let rate = ok as f64 / secs;
    println!("{label:<44} {ok:>6}/{records} acked in {secs:>6.2}s: {rate:>8.0} records/s");
    rate
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let records: usize = env("PITFALL_BENCH_RECORDS", "20000")
        .parse()
        .unwrap_or(20_000);
    let kafka = env("PITFALL_KAFKA", "127.0.0.1:9092");
    let kafka_proxy = env("PITFALL_KAFKA_PROXY", "127.0.0.1:19092");
    let proxy = FaultProxy::start(&kafka_proxy, &kafka, seed::rng(0, "bench"))
        .await
        .expect("the broker proxy port is free");
    let names = Arc::new(RunNames::new(&format!("bench_{}", std::process::id()), &[]));
    let admin = KafkaAdmin::new(&kafka_proxy).expect("an admin client");
    let topics = vec![
        names.topic("raw"),
        names.topic("blocks"),
        names.topic("resilient"),
    ];
    admin
        .create_topics(&topics, 3)
        .await
        .expect("creating the bench topics");

    // The same pinned settings for both: acks=all, idempotence on, 5 in flight.
    let config = ProducerConfig {
        idempotent: true,
        max_in_flight: 5,
        retries: 10,
        request_timeout_ms: 5_000,
        delivery_timeout_ms: 30_000,
        compression: None,
    };
    let addr = proxy.addr().to_string();
    let mut raw_cfg = ClientConfig::new();
    for (k, v) in producer_settings(&addr, &config) {
        raw_cfg.set(k, v);
    }
    let raw: FutureProducer = raw_cfg.create().expect("a raw producer");
    let broker = KafkaBroker::new(&addr, names.clone(), "bench", History::since_now());
    let port = broker.producer(&config);
    let (store, root) =
        store::open("file:///tmp/pitfall-bench-objects").expect("a local object store");
    let fallback = Arc::new(RealStore::new(
        store,
        &root,
        names.prefix(),
        SharedStoreFaults::default(),
        History::since_now(),
        "bench",
    ));
    let resilient = Arc::new(ResilientProducer::new(
        broker.producer(&config),
        fallback,
        Arc::new(NoEnv),
    ));

    let raw_batch = |range: std::ops::Range<usize>| {
        let raw = &raw;
        let topic = &topics[0];
        async move {
            let mut ok = 0;
            for chunk in range.collect::<Vec<_>>().chunks(BATCH) {
                let sends = chunk.iter().map(|i| async move {
                    let key = format!("o{i}");
                    let value = payload(*i);
                    raw.send(
                        FutureRecord::to(topic).key(&key).payload(&value),
                        Timeout::After(Duration::from_secs(30)),
                    )
                    .await
                    .is_ok()
                });
                ok += join_all(sends).await.into_iter().filter(|b| *b).count();
            }
            ok
        }
    };
    let raw_headers_batch = |range: std::ops::Range<usize>| {
        let raw = &raw;
        let topic = &topics[0];
        async move {
            let mut ok = 0;
            for chunk in range.collect::<Vec<_>>().chunks(BATCH) {
                let sends = chunk.iter().map(|i| async move {
                    let key = format!("o{i}");
                    let value = payload(*i);
                    let request_id = format!("r{i:08x}");
                    let headers = OwnedHeaders::new()
                        .insert(Header {
                            key: "type",
                            value: Some("payment-completed"),
                        })
                        .insert(Header {
                            key: "requestId",
                            value: Some(&request_id),
                        })
                        .insert(Header {
                            key: "userId",
                            value: Some("u1"),
                        });
                    let record = FutureRecord::to(topic)
                        .key(&key)
                        .payload(&value)
                        .headers(headers);
                    raw.send(record, Timeout::After(Duration::from_secs(30)))
                        .await
                        .is_ok()
                });
                ok += join_all(sends).await.into_iter().filter(|b| *b).count();
            }
            ok
        }
    };
    let port_batch = |range: std::ops::Range<usize>| {
        let port = port.clone();
        async move {
            let mut ok = 0;
            for chunk in range.collect::<Vec<_>>().chunks(BATCH) {
                let sends = chunk.iter().map(|i| {
                    let port = port.clone();
                    RequestContext::new(format!("r{i:08x}"), "u1").scope(async move {
                        let rec = publish::record(
                            "blocks",
                            &format!("o{i}"),
                            "payment-completed",
                            payload(*i),
                        );
                        port.send(rec).await.is_ok()
                    })
                });
                ok += join_all(sends).await.into_iter().filter(|b| *b).count();
            }
            ok
        }
    };
    let resilient_batch = |range: std::ops::Range<usize>| {
        let resilient = resilient.clone();
        async move {
            let mut ok = 0;
            for chunk in range.collect::<Vec<_>>().chunks(BATCH) {
                let sends = chunk.iter().map(|i| {
                    let resilient = resilient.clone();
                    RequestContext::new(format!("r{i:08x}"), "u1").scope(async move {
                        let rec = publish::record(
                            "resilient",
                            &format!("o{i}"),
                            "payment-completed",
                            payload(*i),
                        );
                        resilient.send(rec).await.is_ok()
                    })
                });
                ok += join_all(sends).await.into_iter().filter(|b| *b).count();
            }
            ok
        }
    };

    // Warm up every producer: connections, metadata, partition leaders.
    raw_batch(0..200).await;
    raw_headers_batch(0..200).await;
    port_batch(0..200).await;
    resilient_batch(0..200).await;

    println!("{records} records of ~150 bytes per round, {BATCH} in flight at a time, acks=all, idempotent; 3 alternating rounds");
    let (mut raw_rates, mut headers_rates, mut port_rates, mut resilient_rates) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..3 {
        let base = 1_000 + round * records;
        raw_rates.push(
            timed(
                "raw rdkafka FutureProducer",
                records,
                raw_batch(base..base + records),
            )
            .await,
        );
        headers_rates.push(
            timed(
                "raw rdkafka + the same 3 headers",
                records,
                raw_headers_batch(base..base + records),
            )
            .await,
        );
        port_rates.push(
            timed(
                "Producer port + context headers",
                records,
                port_batch(base..base + records),
            )
            .await,
        );
        resilient_rates.push(
            timed(
                "resilient producer (broker healthy)",
                records,
                resilient_batch(base..base + records),
            )
            .await,
        );
    }
    let median = |v: &mut Vec<f64>| -> f64 {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let raw_rate = median(&mut raw_rates);
    let headers_rate = median(&mut headers_rates);
    let port_rate = median(&mut port_rates);
    let resilient_rate = median(&mut resilient_rates);
    println!(
        "medians (records/s): raw {raw_rate:.0}, raw + headers {headers_rate:.0}, Producer port {port_rate:.0}, resilient {resilient_rate:.0}"
    );
    println!(
        "ratio to raw rdkafka: raw + headers {:.2}, Producer port {:.2}, resilient producer {:.2}",
        headers_rate / raw_rate,
        port_rate / raw_rate,
        resilient_rate / raw_rate
    );
    admin
        .delete_topics(&topics)
        .await
        .expect("deleting the bench topics");
}
