//! The consume-transform-produce loop with Kafka's exactly-once semantics
//! (pitfall 5): each poll's records are handled in one Kafka transaction
//! that carries what they produce and the group's offsets, so the output
//! and the progress commit together or not at all.
//!
//! The DB effect of each record cannot join that transaction. It commits
//! first, in its own DB transaction; if the Kafka transaction then aborts (a
//! crash, a fenced zombie, a timeout), the records are consumed again and
//! the effect applies again, unless the effect's transaction also stored the
//! record's topic-partition-offset ([`Idempotency::DedupeOffset`]), which
//! is exactly the "txn id" the article recommends. The output is produced
//! again either way: the aborted copy is never read under
//! `read_committed`.

use crate::backoff::Backoff;
use crate::consume::{Applied, Applier, Handler, Idempotency};
use pitfall_ports::context::RequestContext;
use pitfall_ports::{
    Broker, Consumer, ConsumerConfig, ConsumerRecord, Database, Env, ProducerConfig,
    ProducerRecord, TopicPartitionOffset, TxnError, TxnProducer,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What one consumed record produces, inside its request context.
pub trait Transform: Send + Sync {
    /// The record to produce for `record`; `None` produces nothing.
    fn output(&self, record: &ConsumerRecord) -> Option<ProducerRecord>;
}

/// The clients and names the loop makes its consumer and producer from.
pub struct EosConfig {
    pub consumer: ConsumerConfig,
    pub producer: ProducerConfig,
    /// The producer's `transactional.id`: stable per instance, so a
    /// restarted instance fences its predecessor.
    pub transactional_id: String,
    pub transaction_timeout_ms: u64,
}

pub struct EosLoop {
    broker: Arc<dyn Broker>,
    config: EosConfig,
    applier: Applier,
    transform: Arc<dyn Transform>,
}

impl EosLoop {
    /// `idempotency` is the DB effect's: `Naive` for plain `kafka-eos`,
    /// `DedupeOffset` for the txn id stored with the effect.
    pub fn new(
        broker: Arc<dyn Broker>,
        config: EosConfig,
        db: Arc<dyn Database>,
        handler: Arc<dyn Handler>,
        transform: Arc<dyn Transform>,
        env: Arc<dyn Env>,
        idempotency: Idempotency,
    ) -> Self {
        let consumer = ConsumerConfig {
            read_committed: true,
            ..config.consumer
        };
        EosLoop {
            broker,
            config: EosConfig { consumer, ..config },
            applier: Applier {
                db,
                handler,
                env,
                idempotency,
            },
            transform,
        }
    }

    /// Run forever. After a transaction aborts, go back to the committed
    /// offsets and consume again; after this producer was fenced, make a
    /// new one first (which fences whatever is left of the old one).
    pub async fn run(self) {
        let env = self.applier.env.clone();
        let mut backoff = Backoff::new(50, 1_000);
        let mut consumer = self.broker.consumer(&self.config.consumer);
        let mut producer = self.producer();
        loop {
            let records = match consumer.poll(Duration::from_millis(200)).await {
                Ok(records) => records,
                Err(e) => {
                    tracing::warn!(error = %e, "eos: poll failed");
                    backoff.wait(env.as_ref()).await;
                    continue;
                }
            };
            backoff.reset();
            if records.is_empty() {
                continue;
            }
            let done = self.batch(consumer.as_mut(), producer.as_mut(), &records);
            let Err(e) = done.await else { continue };
            tracing::warn!(error = %e, "eos: transaction failed; consuming again");
            match e {
                TxnError::Abortable(_) => {
                    if producer.abort().await.is_err() {
                        producer = self.producer();
                    }
                }
                TxnError::Fenced(_) => producer = self.producer(),
            }
            while let Err(e) = consumer.rewind().await {
                tracing::warn!(error = %e, "eos: cannot go back to the committed offsets");
                backoff.wait(env.as_ref()).await;
            }
        }
    }

    fn producer(&self) -> Box<dyn TxnProducer> {
        self.broker.txn_producer(
            &self.config.transactional_id,
            &self.config.producer,
            self.config.transaction_timeout_ms,
        )
    }

    /// One transaction: apply each record's effect, produce its output,
    /// send the offsets after the batch, commit.
    async fn batch(
        &self,
        consumer: &mut dyn Consumer,
        producer: &mut dyn TxnProducer,
        records: &[ConsumerRecord],
    ) -> Result<(), TxnError> {
        producer.begin().await?;
        let mut next: BTreeMap<(String, u32), u64> = BTreeMap::new();
        for record in records {
            let ctx = RequestContext::from_headers(&record.headers).unwrap_or_default();
            let (applied, output) = ctx
                .scope(async {
                    let applied = self.applier.handle(record).await;
                    (applied, self.transform.output(record))
                })
                .await;
            // Produce for a record applied now or before (its output may
            // have gone with an aborted transaction); not for another copy
            // of an event already handled, nor for poison.
            let produce = matches!(applied, Applied::Applied | Applied::Redelivered);
            if let Some(output) = output.filter(|_| produce) {
                producer.send(output).await?;
            }
            next.insert((record.topic.clone(), record.partition), record.offset + 1);
        }
        let offsets: Vec<TopicPartitionOffset> = next
            .into_iter()
            .map(|((topic, partition), offset)| TopicPartitionOffset {
                topic,
                partition,
                offset,
            })
            .collect();
        if let Some(o) = consumer.reassigned_since_polled(&offsets) {
            return Err(TxnError::Abortable(format!(
                "{}/{} was reassigned since its records were polled",
                o.topic, o.partition
            )));
        }
        let group = consumer
            .group_metadata()
            .ok_or_else(|| TxnError::Abortable("not a group member".into()))?;
        producer.send_offsets(&group, &offsets).await?;
        producer.commit().await
    }
}
