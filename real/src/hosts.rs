//! What stands in for hosts in real mode: the time/randomness port, the
//! payments and orders services' in-process front doors, and the consumer decorator that
//! crashes an inventory member between applying an effect and committing its
//! offset.

use async_trait::async_trait;
use pitfall_sim::seed::SimRng;
use pitfall_sim::topology as t;
use pitfall_sim::wire::CallError;
use pitfall_sim::workload::{Checkout, PaymentReply, CALL_TIMEOUT};
use pitfall_system::ports::{ConsumeError, Consumer, ConsumerRecord, Env, TopicPartitionOffset};
use pitfall_system::services::orders::{OrdersCall, OrdersReply};
use pitfall_system::services::payments::PaymentsCall;
use rand::RngCore;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Real time since the run started and a generator seeded from the run's
/// seed: the workload's random choices replay, the timing does not.
pub struct RealEnv {
    start: tokio::time::Instant,
    rng: Mutex<SimRng>,
}

impl RealEnv {
    pub fn new(start: tokio::time::Instant, rng: SimRng) -> Self {
        RealEnv {
            start,
            rng: Mutex::new(rng),
        }
    }
}

#[async_trait]
impl Env for RealEnv {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }

    fn random_u64(&self) -> u64 {
        self.rng.lock().unwrap().next_u64()
    }
}

/// A call to the payments service with the slot for its reply.
pub type PayCall = (PaymentsCall, oneshot::Sender<PaymentReply>);
/// A call to the orders service with the slot for its reply.
pub type OrdersMsg = (OrdersCall, oneshot::Sender<OrdersReply>);

/// A request channel: each call with the slot for its reply.
pub type Requests<C, R> = mpsc::Sender<(C, oneshot::Sender<R>)>;

/// One service's in-process door: the current incarnation's request
/// channel, none while it is down.
pub struct Door<C, R> {
    tx: Arc<Mutex<Option<Requests<C, R>>>>,
}

impl<C, R> Clone for Door<C, R> {
    fn clone(&self) -> Self {
        Door {
            tx: self.tx.clone(),
        }
    }
}

impl<C, R> Default for Door<C, R> {
    fn default() -> Self {
        Door { tx: Arc::default() }
    }
}

impl<C, R> Door<C, R> {
    pub fn open(&self, tx: Requests<C, R>) {
        *self.tx.lock().unwrap() = Some(tx);
    }

    pub fn close(&self) {
        *self.tx.lock().unwrap() = None;
    }

    async fn call(&self, service: &str, call: C) -> Result<R, CallError> {
        let door = self.tx.lock().unwrap().clone();
        let down = || CallError::NotSent(format!("{service} is down"));
        let Some(door) = door else {
            return Err(down());
        };
        let (tx, rx) = oneshot::channel();
        door.send((call, tx)).await.map_err(|_| down())?;
        match tokio::time::timeout(CALL_TIMEOUT, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(CallError::NoReply(format!("{service} went away"))),
            Err(_) => Err(CallError::NoReply("timed out".into())),
        }
    }
}

/// The services' front doors as the shoppers see them, and which
/// (shopper, service) pairs a partition cuts.
#[derive(Clone, Default)]
pub struct Front {
    pub payments: Door<PaymentsCall, PaymentReply>,
    pub orders: Door<OrdersCall, OrdersReply>,
    cut: Arc<Mutex<std::collections::BTreeSet<(String, String)>>>,
}

impl Front {
    pub fn close(&self) {
        self.payments.close();
        self.orders.close();
    }

    pub fn set_cut(&self, shopper: &str, service: &str, cut: bool) {
        let mut c = self.cut.lock().unwrap();
        let pair = (shopper.to_string(), service.to_string());
        if cut {
            c.insert(pair);
        } else {
            c.remove(&pair);
        }
    }

    pub fn checkout(&self, shopper: &str) -> FrontCheckout {
        FrontCheckout {
            front: self.clone(),
            shopper: shopper.to_string(),
        }
    }

    async fn cut_off(&self, shopper: &str, service: &str) -> Result<(), CallError> {
        let cut = (self.cut.lock().unwrap()).contains(&(shopper.to_string(), service.to_string()));
        if cut {
            tokio::time::sleep(CALL_TIMEOUT).await;
            return Err(CallError::NotSent(format!("partitioned from {service}")));
        }
        Ok(())
    }
}

pub struct FrontCheckout {
    front: Front,
    shopper: String,
}

#[async_trait]
impl Checkout for FrontCheckout {
    async fn call(&self, req: &PaymentsCall) -> Result<PaymentReply, CallError> {
        self.front.cut_off(&self.shopper, t::PAYMENTS).await?;
        self.front.payments.call(t::PAYMENTS, req.clone()).await
    }

    async fn orders(&self, req: &OrdersCall) -> Result<OrdersReply, CallError> {
        self.front.cut_off(&self.shopper, t::ORDERS).await?;
        self.front.orders.call(t::ORDERS, req.clone()).await
    }
}

/// Wraps an inventory member's consumer: when armed, its next offset commit
/// asks the supervisor to crash the member instead of committing, so the
/// effects of the batch are applied and their offsets are not.
pub struct CrashAtCommit {
    inner: Box<dyn Consumer>,
    armed: Arc<AtomicBool>,
    host: String,
    crash: mpsc::UnboundedSender<String>,
}

impl CrashAtCommit {
    pub fn new(
        inner: Box<dyn Consumer>,
        armed: Arc<AtomicBool>,
        host: &str,
        crash: mpsc::UnboundedSender<String>,
    ) -> Self {
        CrashAtCommit {
            inner,
            armed,
            host: host.to_string(),
            crash,
        }
    }
}

#[async_trait]
impl Consumer for CrashAtCommit {
    async fn poll(&mut self, max_wait: Duration) -> Result<Vec<ConsumerRecord>, ConsumeError> {
        self.inner.poll(max_wait).await
    }

    async fn commit(&mut self, offsets: &[TopicPartitionOffset]) -> Result<(), ConsumeError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            let _ = self.crash.send(self.host.clone());
            // The supervisor aborts this task; never commit.
            std::future::pending::<()>().await;
        }
        self.inner.commit(offsets).await
    }
}
