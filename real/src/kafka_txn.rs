//! The transactional producer port on rdkafka's transactional API:
//! `init_transactions` (which fences older producers with the same
//! `transactional.id`), `begin_transaction`, sends,
//! `send_offsets_to_transaction` with the consumer's group metadata, and
//! `commit_transaction`/`abort_transaction`. librdkafka's transactional
//! calls block, so they run in `block_in_place`.
//!
//! Committed offsets and each transaction's outcome are recorded in the
//! history as they happen; the records themselves are read back after the
//! drain like every other append.

use crate::kafka::{producer_settings, ClientLog, ProcessContext};
use crate::names::RunNames;
use async_trait::async_trait;
use pitfall_harness::history::{Event, History};
use pitfall_ports::{
    Delivery, GroupMetadata, ProducerConfig, ProducerRecord, TopicPartitionOffset, TxnError,
    TxnProducer,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::Duration;

/// How long one transactional call may block.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// librdkafka settings of a transactional producer: the pinned producer
/// settings, with idempotence (which transactions require) and the id.
pub fn txn_producer_settings(
    bootstrap: &str,
    cfg: &ProducerConfig,
    transactional_id: &str,
    timeout_ms: u64,
) -> std::collections::BTreeMap<String, String> {
    let mut s = producer_settings(bootstrap, cfg);
    s.insert("enable.idempotence".into(), "true".into());
    s.insert(
        "max.in.flight.requests.per.connection".into(),
        cfg.max_in_flight.min(5).to_string(),
    );
    s.insert("transactional.id".into(), transactional_id.into());
    // Coordinator requests (AddPartitionsToTxn, EndTxn) wait on the
    // transaction log, not only on one produce: they keep librdkafka's
    // default network timeout.
    s.remove("socket.timeout.ms");
    s.insert("transaction.timeout.ms".into(), timeout_ms.to_string());
    // librdkafka refuses a message timeout above the transaction's.
    let message_timeout = cfg.delivery_timeout_ms.min(timeout_ms);
    s.insert("message.timeout.ms".into(), message_timeout.to_string());
    s
}

pub struct KafkaTxnProducer {
    inner: Option<FutureProducer<ProcessContext>>,
    settings: std::collections::BTreeMap<String, String>,
    names: Arc<RunNames>,
    history: History,
    process: String,
    transactional_id: String,
    ready: bool,
    /// Offsets sent with the open transaction, and its records.
    offsets: Vec<(String, TopicPartitionOffset)>,
    records: Vec<TopicPartitionOffset>,
}

impl KafkaTxnProducer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        bootstrap: &str,
        config: &ProducerConfig,
        transactional_id: &str,
        timeout_ms: u64,
        names: Arc<RunNames>,
        history: History,
        process: &str,
        clients: &ClientLog,
    ) -> Self {
        let physical_id = names.group(transactional_id);
        let settings = txn_producer_settings(bootstrap, config, &physical_id, timeout_ms);
        clients.record("txn-producer", &settings);
        let settings = crate::kafka::with_diagnostics(settings, process);
        KafkaTxnProducer {
            inner: None,
            settings,
            names,
            history,
            process: process.to_string(),
            transactional_id: transactional_id.to_string(),
            ready: false,
            offsets: Vec::new(),
            records: Vec::new(),
        }
    }

    fn producer(&mut self) -> Result<&FutureProducer<ProcessContext>, TxnError> {
        if self.inner.is_none() {
            let mut c = ClientConfig::new();
            for (k, v) in &self.settings {
                c.set(k, v);
            }
            let context = ProcessContext {
                process: self.process.clone(),
            };
            let p = c.create_with_context(context).map_err(txn_error)?;
            self.inner = Some(p);
        }
        Ok(self.inner.as_ref().expect("just made"))
    }

    /// Record the transaction's end and forget it.
    fn ended(&mut self, committed: bool) {
        let offsets = std::mem::take(&mut self.offsets);
        if committed {
            for (group, o) in offsets {
                self.history.record(Event::OffsetCommit {
                    process: self.process.clone(),
                    group,
                    topic: o.topic,
                    partition: o.partition,
                    offset: o.offset,
                });
            }
        }
        self.history.record(Event::TxnEnd {
            transactional_id: self.transactional_id.clone(),
            process: self.process.clone(),
            committed,
            records: std::mem::take(&mut self.records),
            markers: Vec::new(),
        });
    }
}

/// A fatal error (fenced by a newer producer, an epoch bumped on timeout)
/// ends this producer; anything else aborts the transaction.
fn txn_error(e: KafkaError) -> TxnError {
    let fenced = match &e {
        KafkaError::Transaction(r) => r.is_fatal(),
        _ => false,
    } || matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::Fenced
        )
    );
    if fenced {
        TxnError::Fenced(e.to_string())
    } else {
        TxnError::Abortable(e.to_string())
    }
}

#[async_trait]
impl TxnProducer for KafkaTxnProducer {
    async fn begin(&mut self) -> Result<(), TxnError> {
        let ready = self.ready;
        let p = self.producer()?;
        tokio::task::block_in_place(|| {
            if !ready {
                p.init_transactions(CALL_TIMEOUT)?;
            }
            p.begin_transaction()
        })
        .map_err(txn_error)?;
        self.ready = true;
        self.offsets.clear();
        self.records.clear();
        Ok(())
    }

    async fn send(&mut self, record: ProducerRecord) -> Result<Delivery, TxnError> {
        let topic = self.names.topic(&record.topic);
        let mut headers = OwnedHeaders::new();
        for (k, v) in &record.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let value = record.value.bytes();
        let fr = FutureRecord::to(&topic)
            .key(record.key.as_bytes())
            .payload(value.as_ref())
            .headers(headers);
        let p = self.producer()?;
        let delivered = p.send(fr, CALL_TIMEOUT).await;
        let d = delivered.map_err(|(e, _)| txn_error(e))?;
        let delivery = Delivery {
            partition: d.partition as u32,
            offset: d.offset as u64,
        };
        self.records.push(TopicPartitionOffset {
            topic: record.topic,
            partition: delivery.partition,
            offset: delivery.offset,
        });
        Ok(delivery)
    }

    async fn send_offsets(
        &mut self,
        group: &GroupMetadata,
        offsets: &[TopicPartitionOffset],
    ) -> Result<(), TxnError> {
        let cgm = group
            .handle
            .as_ref()
            .and_then(|h| h.downcast_ref::<ConsumerGroupMetadata>())
            .ok_or_else(|| TxnError::Abortable("no rdkafka group metadata".into()))?;
        let mut tpl = TopicPartitionList::new();
        for o in offsets {
            tpl.add_partition_offset(
                &self.names.topic(&o.topic),
                o.partition as i32,
                Offset::Offset(o.offset as i64),
            )
            .map_err(txn_error)?;
        }
        let p = self.producer()?;
        tokio::task::block_in_place(|| p.send_offsets_to_transaction(&tpl, cgm, CALL_TIMEOUT))
            .map_err(txn_error)?;
        self.offsets
            .extend(offsets.iter().map(|o| (group.group.clone(), o.clone())));
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), TxnError> {
        let p = self.producer()?;
        tokio::task::block_in_place(|| p.commit_transaction(CALL_TIMEOUT)).map_err(txn_error)?;
        self.ended(true);
        Ok(())
    }

    async fn abort(&mut self) -> Result<(), TxnError> {
        let p = self.producer()?;
        let result = tokio::task::block_in_place(|| p.abort_transaction(CALL_TIMEOUT));
        self.ended(false);
        result.map_err(txn_error)
    }
}
