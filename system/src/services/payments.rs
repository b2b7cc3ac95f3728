//! The payments service: "complete payment for order O". It records the
//! payment in its DB; how the event then reaches inventory is the pitfall 1
//! variant.

use crate::events::{AttachmentRef, PaymentCompleted, PaymentStatus, PAYMENT_COMPLETED};
use crate::schema::{RefundRow, INVOICES_TOPIC, PAYMENTS, PAYMENTS_TOPIC, REFUNDS};
use crate::variants::Publish;
use pitfall_blocks::backoff::Backoff;
use pitfall_blocks::payload::{
    encode, send_payload, Attachment, Codec, PayloadError, Planned, Strategy,
};
use pitfall_blocks::publish::{self, ResilientProducer};
use pitfall_ports::context::RequestContext;
use pitfall_ports::{Database, DbError, Env, ProduceError, Producer};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A shopper's request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequest {
    pub order_id: String,
    pub product: String,
    pub qty: i64,
    pub user_id: String,
    pub request_id: String,
    /// An attachment (an invoice) to send along, generated from this spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<AttachmentSpec>,
}

/// A generated attachment: its size and the seed of its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentSpec {
    pub size: u64,
    pub seed: u64,
}

/// How attachments leave the payments service (pitfall 4): the strategy
/// and where it sends to.
pub struct PayloadOutlet {
    pub producer: Arc<dyn Producer>,
    pub store: Arc<dyn pitfall_ports::ObjectStore>,
    pub strategy: Strategy,
    pub codec: Codec,
    pub chunk_bytes: usize,
    pub max_message_bytes: usize,
}

/// A shopper's request to refund a completed payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    pub order_id: String,
    pub user_id: String,
    pub request_id: String,
}

/// One call to the payments service's RPC front.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentsCall {
    Pay(PaymentRequest),
    Refund(RefundRequest),
}

impl PaymentsCall {
    /// The operation's name in the history.
    pub fn op(&self) -> &'static str {
        match self {
            PaymentsCall::Pay(_) => "pay",
            PaymentsCall::Refund(_) => "refund",
        }
    }

    pub fn request_id(&self) -> &str {
        match self {
            PaymentsCall::Pay(r) => &r.request_id,
            PaymentsCall::Refund(r) => &r.request_id,
        }
    }
}

/// Why a payment request did not return OK.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum PaymentError {
    /// Nothing was done; the request may be retried.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The service does not know what happened.
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// The request can never succeed (a refund of an unknown payment).
    #[error("rejected: {0}")]
    Rejected(String),
}

/// How the event leaves the service, by variant.
enum Outlet {
    Producer(Arc<dyn Producer>),
    Resilient(ResilientProducer),
    Cdc,
}

pub struct PaymentsService {
    db: Arc<dyn Database>,
    env: Arc<dyn Env>,
    publish: Publish,
    outlet: Outlet,
    payloads: Option<PayloadOutlet>,
}

#[derive(Debug, PartialEq, Eq)]
enum Inserted {
    Fresh,
    AlreadyExists,
}

impl PaymentsService {
    /// `producer` and `fallback` are needed by the variants that produce
    /// directly; CDC uses neither.
    pub fn new(
        publish: Publish,
        db: Arc<dyn Database>,
        env: Arc<dyn Env>,
        producer: Option<Arc<dyn Producer>>,
        fallback: Option<Arc<dyn pitfall_ports::ObjectStore>>,
    ) -> Self {
        let need = |p: Option<Arc<dyn Producer>>| {
            p.unwrap_or_else(|| panic!("the {} variant needs a producer", publish.name()))
        };
        let outlet = match publish {
            Publish::DualWrite | Publish::ProduceFirst => Outlet::Producer(need(producer)),
            Publish::ResilientProducer => Outlet::Resilient(ResilientProducer::new(
                need(producer),
                fallback.expect("the resilient producer needs an object store"),
                env.clone(),
            )),
            Publish::Cdc => Outlet::Cdc,
        };
        PaymentsService {
            db,
            env,
            publish,
            outlet,
            payloads: None,
        }
    }

    /// Send orders' attachments this way.
    pub fn with_payloads(mut self, payloads: PayloadOutlet) -> Self {
        self.payloads = Some(payloads);
        self
    }

    pub fn variant(&self) -> Publish {
        self.publish
    }

    /// Handle one RPC call with its request context as the current one.
    pub async fn call(&self, call: PaymentsCall) -> Result<(), PaymentError> {
        match call {
            PaymentsCall::Pay(req) => self.complete_payment(req).await,
            PaymentsCall::Refund(req) => self.refund(req).await,
        }
    }

    /// Handle one payment request with its context as the current one.
    pub async fn complete_payment(&self, req: PaymentRequest) -> Result<(), PaymentError> {
        let ctx = RequestContext::new(&req.request_id, &req.user_id);
        ctx.scope(self.handle(req)).await
    }

    /// Refund a completed payment: the payment row moves to revision 2,
    /// `refunded`, and the change leaves the service the same way a payment
    /// does (this variant's outlet).
    pub async fn refund(&self, req: RefundRequest) -> Result<(), PaymentError> {
        let ctx = RequestContext::new(&req.request_id, &req.user_id);
        ctx.scope(self.handle_refund(req)).await
    }

    async fn handle_refund(&self, req: RefundRequest) -> Result<(), PaymentError> {
        let (version, current) = self
            .read_payment(&req.order_id)
            .await
            .map_err(db_error)?
            .ok_or_else(|| {
                PaymentError::Rejected(format!("no payment for order {}", req.order_id))
            })?;
        if current.status == PaymentStatus::Refunded {
            // A retry of a refund that committed.
            return self.publish_committed(&current, false).await;
        }
        let refunded = PaymentCompleted {
            status: PaymentStatus::Refunded,
            revision: version + 1,
            request_id: req.request_id,
            user_id: req.user_id,
            ..current
        };
        if let Outlet::Producer(producer) = &self.outlet {
            if self.publish == Publish::ProduceFirst {
                producer
                    .send(event_record(&refunded))
                    .await
                    .map_err(unavailable)?;
            }
        }
        let fresh = match self.update(&refunded, version).await {
            Ok(()) => true,
            Err(PaymentError::Unknown(_)) if matches!(self.outlet, Outlet::Resilient(_)) => {
                if !self
                    .verify(&refunded.order_id, PaymentStatus::Refunded)
                    .await
                {
                    return Err(PaymentError::Unavailable("commit did not apply".into()));
                }
                false
            }
            Err(e) => return Err(e),
        };
        tracing::info!(order = refunded.order_id, "payments: refund committed");
        if self.publish == Publish::ProduceFirst {
            return Ok(());
        }
        self.publish_committed(&refunded, fresh).await
    }

    /// Get a committed change out through this variant's outlet. `fresh`
    /// says this call committed it (a naive dual write produces only then).
    async fn publish_committed(
        &self,
        payment: &PaymentCompleted,
        fresh: bool,
    ) -> Result<(), PaymentError> {
        match &self.outlet {
            Outlet::Producer(_) if !fresh => Ok(()),
            Outlet::Producer(producer) => match producer.send(event_record(payment)).await {
                Ok(d) => {
                    tracing::info!(
                        partition = d.partition,
                        offset = d.offset,
                        "payments: event produced"
                    );
                    Ok(())
                }
                Err(e) => {
                    tracing::warn!(error = %e, "payments: committed, but the event was not produced");
                    Err(PaymentError::Unknown(format!("committed, but {e}")))
                }
            },
            Outlet::Resilient(resilient) => match resilient.send(event_record(payment)).await {
                Ok(secured) => {
                    tracing::info!(?secured, "payments: event secured");
                    Ok(())
                }
                Err(e) => Err(unavailable(e)),
            },
            Outlet::Cdc => Ok(()),
        }
    }

    async fn handle(&self, req: PaymentRequest) -> Result<(), PaymentError> {
        let attachment = req.attachment.map(|spec| {
            let attachment =
                Attachment::generate(req.order_id.as_str(), spec.size as usize, spec.seed);
            match &self.payloads {
                Some(out)
                    if matches!(out.strategy, Strategy::ChunkedStore | Strategy::ChunkedSeek) =>
                {
                    attachment.chunked(out.chunk_bytes)
                }
                Some(out) if out.strategy == Strategy::Compressed => attachment.compressed(),
                _ => attachment,
            }
        });
        self.handle_payment(req, attachment.as_ref()).await?;
        match attachment {
            Some(attachment) => self.send_attachment(&attachment).await,
            None => Ok(()),
        }
    }

    /// Send an order's attachment after its payment is secured. The payment
    /// row names its digest, so the archive's copy can be checked against it.
    async fn send_attachment(&self, attachment: &Attachment) -> Result<(), PaymentError> {
        let Some(out) = &self.payloads else {
            return Ok(());
        };
        let failed = |e: PayloadError| match e {
            PayloadError::TooLarge { .. } => {
                tracing::error!(error = %e, "payments: attachment rejected");
                PaymentError::Rejected(format!("attachment: {e}"))
            }
            e => {
                tracing::warn!(error = %e, "payments: attachment not sent");
                PaymentError::Unavailable(format!("attachment: {e}"))
            }
        };
        let mut planned = encode(
            out.strategy,
            out.codec,
            attachment,
            INVOICES_TOPIC,
            &attachment.id,
            out.chunk_bytes,
            out.max_message_bytes,
        )
        .map_err(failed)?;
        let context = RequestContext::current()
            .map(|c| c.to_headers())
            .unwrap_or_default();
        for step in &mut planned {
            if let Planned::Record(record) = step {
                record.headers.extend(context.iter().cloned());
            }
        }
        let sent = send_payload(out.producer.as_ref(), out.store.as_ref(), planned)
            .await
            .map_err(failed)?;
        tracing::info!(
            size = attachment.size(),
            records = sent.deliveries.len(),
            uploads = sent.uploaded.len(),
            strategy = out.strategy.name(),
            "payments: attachment sent"
        );
        Ok(())
    }

    async fn handle_payment(
        &self,
        req: PaymentRequest,
        attachment: Option<&Attachment>,
    ) -> Result<(), PaymentError> {
        let payment = PaymentCompleted {
            payment_id: format!("pay-{}", req.order_id),
            order_id: req.order_id,
            product: req.product,
            qty: req.qty,
            user_id: req.user_id,
            request_id: req.request_id,
            revision: 1,
            status: PaymentStatus::Completed,
            attachment: attachment.map(|a| AttachmentRef {
                size: a.size() as u64,
                digest: a.digest(),
            }),
        };
        match &self.outlet {
            Outlet::Producer(producer) if self.publish == Publish::ProduceFirst => {
                producer
                    .send(event_record(&payment))
                    .await
                    .map_err(unavailable)?;
                self.insert(&payment).await.map(drop)
            }
            // A retry of a request whose commit already happened: the naive
            // service assumes the first attempt produced.
            Outlet::Producer(_) => {
                let fresh = self.insert(&payment).await? == Inserted::Fresh;
                self.publish_committed(&payment, fresh).await
            }
            // Whether fresh or a retry, make sure the event is secured:
            // consumers dedupe, so producing twice is safe, losing is not.
            Outlet::Resilient(_) => {
                self.insert_verified(&payment).await?;
                self.publish_committed(&payment, true).await
            }
            Outlet::Cdc => self.insert(&payment).await.map(drop),
        }
    }

    async fn insert(&self, payment: &PaymentCompleted) -> Result<Inserted, PaymentError> {
        let mut tx = self.db.begin().await.map_err(db_error)?;
        let data = serde_json::to_value(payment).expect("payment serializes");
        match tx.insert(PAYMENTS, &payment.order_id, data).await {
            Ok(()) => {}
            Err(DbError::UniqueViolation { .. }) => {
                tx.rollback().await;
                return Ok(Inserted::AlreadyExists);
            }
            Err(e) => return Err(db_error(e)),
        }
        match tx.commit().await {
            Ok(_) => {
                tracing::info!(order = payment.order_id, "payments: payment committed");
                Ok(Inserted::Fresh)
            }
            Err(DbError::UniqueViolation { .. }) => Ok(Inserted::AlreadyExists),
            Err(e) => Err(db_error(e)),
        }
    }

    /// Replace the payment row at `version` with `payment`.
    async fn update(&self, payment: &PaymentCompleted, version: u64) -> Result<(), PaymentError> {
        let mut tx = self.db.begin().await.map_err(db_error)?;
        let data = serde_json::to_value(payment).expect("payment serializes");
        if !tx
            .update(PAYMENTS, &payment.order_id, version, data)
            .await
            .map_err(db_error)?
        {
            tx.rollback().await;
            return Err(PaymentError::Unavailable(
                "the payment changed concurrently".into(),
            ));
        }
        if payment.status == PaymentStatus::Refunded {
            // The refund itself, in the same transaction: its own row, whose
            // change log is the refunds topic.
            let refund = RefundRow {
                refund_id: format!("ref-{}", payment.order_id),
                order_id: payment.order_id.clone(),
                payment_id: payment.payment_id.clone(),
                request_id: payment.request_id.clone(),
                user_id: payment.user_id.clone(),
            };
            let data = serde_json::to_value(&refund).expect("refund serializes");
            tx.insert(REFUNDS, &payment.order_id, data)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    /// Insert, and when the commit's outcome is unknown, read it back until
    /// the DB answers: the resilient variant must know whether it owes an
    /// event.
    async fn insert_verified(&self, payment: &PaymentCompleted) -> Result<Inserted, PaymentError> {
        match self.insert(payment).await {
            Err(PaymentError::Unknown(_)) => {}
            other => return other,
        }
        if self
            .verify(&payment.order_id, PaymentStatus::Completed)
            .await
        {
            Ok(Inserted::AlreadyExists)
        } else {
            Err(PaymentError::Unavailable("commit did not apply".into()))
        }
    }

    /// Whether the payment row has reached `status`, reading until the DB
    /// answers.
    async fn verify(&self, order_id: &str, status: PaymentStatus) -> bool {
        let mut backoff = Backoff::new(50, 1_000);
        loop {
            match self.read_payment(order_id).await {
                Ok(row) => {
                    return row.is_some_and(|(_, p)| {
                        p.status == status || p.status == PaymentStatus::Refunded
                    })
                }
                Err(e) => {
                    tracing::warn!(error = %e, "payments: cannot verify commit; retrying");
                    backoff.wait(self.env.as_ref()).await;
                }
            }
        }
    }

    /// The payment row of an order, with its version.
    async fn read_payment(
        &self,
        order_id: &str,
    ) -> Result<Option<(u64, PaymentCompleted)>, DbError> {
        let mut tx = self.db.begin().await?;
        let row = tx.get(PAYMENTS, order_id).await?;
        tx.rollback().await;
        row.map(|r| {
            serde_json::from_value(r.data)
                .map(|p| (r.version, p))
                .map_err(|e| DbError::Other(format!("bad payment row: {e}")))
        })
        .transpose()
    }
}

fn event_record(payment: &PaymentCompleted) -> pitfall_ports::ProducerRecord {
    let value = serde_json::to_vec(payment).expect("payment serializes");
    publish::record(PAYMENTS_TOPIC, &payment.order_id, PAYMENT_COMPLETED, value)
}

fn db_error(e: DbError) -> PaymentError {
    match e {
        DbError::CommitOutcomeUnknown(m) => PaymentError::Unknown(m),
        other => PaymentError::Unavailable(other.to_string()),
    }
}

fn unavailable(e: ProduceError) -> PaymentError {
    PaymentError::Unavailable(e.to_string())
}
