//! The payments service: "complete payment for order O". It records the
//! payment in its DB; how the event then reaches inventory is the pitfall 1
//! variant.

use crate::blocks::backoff::Backoff;
use crate::blocks::publish::{self, ResilientProducer};
use crate::context::RequestContext;
use crate::events::{PaymentCompleted, PAYMENT_COMPLETED};
use crate::ports::{Database, DbError, Env, ProduceError, Producer};
use crate::schema::{PAYMENTS, PAYMENTS_TOPIC};
use crate::variants::Publish;
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
        fallback: Option<Arc<dyn crate::ports::ObjectStore>>,
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
        }
    }

    pub fn variant(&self) -> Publish {
        self.publish
    }

    /// Handle one request with its context as the current one.
    pub async fn complete_payment(&self, req: PaymentRequest) -> Result<(), PaymentError> {
        let ctx = RequestContext::new(&req.request_id, &req.user_id);
        ctx.scope(self.handle(req)).await
    }

    async fn handle(&self, req: PaymentRequest) -> Result<(), PaymentError> {
        let payment = PaymentCompleted {
            payment_id: format!("pay-{}", req.order_id),
            order_id: req.order_id,
            product: req.product,
            qty: req.qty,
            user_id: req.user_id,
            request_id: req.request_id,
            revision: 1,
        };
        match &self.outlet {
            Outlet::Producer(producer) if self.publish == Publish::ProduceFirst => {
                producer
                    .send(event_record(&payment))
                    .await
                    .map_err(unavailable)?;
                self.insert(&payment).await.map(drop)
            }
            Outlet::Producer(producer) => match self.insert(&payment).await? {
                // A retry of a request whose commit already happened: the
                // naive service assumes the first attempt produced.
                Inserted::AlreadyExists => Ok(()),
                Inserted::Fresh => match producer.send(event_record(&payment)).await {
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
            },
            Outlet::Resilient(resilient) => {
                // Whether fresh or a retry, make sure the event is secured:
                // consumers dedupe, so producing twice is safe, losing is not.
                self.insert_verified(&payment).await?;
                match resilient.send(event_record(&payment)).await {
                    Ok(secured) => {
                        tracing::info!(?secured, "payments: event secured");
                        Ok(())
                    }
                    Err(e) => Err(unavailable(e)),
                }
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

    /// Insert, and when the commit's outcome is unknown, read it back until
    /// the DB answers: the resilient variant must know whether it owes an
    /// event.
    async fn insert_verified(&self, payment: &PaymentCompleted) -> Result<Inserted, PaymentError> {
        match self.insert(payment).await {
            Err(PaymentError::Unknown(_)) => {}
            other => return other,
        }
        let mut backoff = Backoff::new(50, 1_000);
        loop {
            match self.read_payment(&payment.order_id).await {
                Ok(true) => return Ok(Inserted::AlreadyExists),
                Ok(false) => return Err(PaymentError::Unavailable("commit did not apply".into())),
                Err(e) => {
                    tracing::warn!(error = %e, "payments: cannot verify commit; retrying");
                    backoff.wait(self.env.as_ref()).await;
                }
            }
        }
    }

    async fn read_payment(&self, order_id: &str) -> Result<bool, DbError> {
        let mut tx = self.db.begin().await?;
        let row = tx.get(PAYMENTS, order_id).await?;
        tx.rollback().await;
        Ok(row.is_some())
    }
}

fn event_record(payment: &PaymentCompleted) -> crate::ports::ProducerRecord {
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
