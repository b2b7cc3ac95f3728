//! What stands in for hosts in real mode: the time/randomness port, the
//! payments service's in-process front door, and the consumer decorator that
//! crashes an inventory member between applying an effect and committing its
//! offset.

use async_trait::async_trait;
use pitfall_sim::seed::SimRng;
use pitfall_sim::wire::CallError;
use pitfall_sim::workload::{Checkout, PaymentReply, CALL_TIMEOUT};
use pitfall_system::ports::{ConsumeError, Consumer, ConsumerRecord, Env, TopicPartitionOffset};
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

/// The payments service's front door as the shoppers see it: the current
/// incarnation's request channel (none while it is down), and whether a
/// shopper is cut off from it by a partition.
#[derive(Clone, Default)]
pub struct Front {
    door: Arc<Mutex<Option<mpsc::Sender<PayCall>>>>,
    cut: Arc<Mutex<std::collections::BTreeSet<String>>>,
}

impl Front {
    pub fn open(&self, tx: mpsc::Sender<PayCall>) {
        *self.door.lock().unwrap() = Some(tx);
    }

    pub fn close(&self) {
        *self.door.lock().unwrap() = None;
    }

    pub fn set_cut(&self, shopper: &str, cut: bool) {
        let mut c = self.cut.lock().unwrap();
        if cut {
            c.insert(shopper.to_string());
        } else {
            c.remove(shopper);
        }
    }

    pub fn checkout(&self, shopper: &str) -> FrontCheckout {
        FrontCheckout {
            front: self.clone(),
            shopper: shopper.to_string(),
        }
    }
}

pub struct FrontCheckout {
    front: Front,
    shopper: String,
}

#[async_trait]
impl Checkout for FrontCheckout {
    async fn call(&self, req: &PaymentsCall) -> Result<PaymentReply, CallError> {
        if self.front.cut.lock().unwrap().contains(&self.shopper) {
            tokio::time::sleep(CALL_TIMEOUT).await;
            return Err(CallError::NotSent("partitioned from payments".into()));
        }
        let door = self.front.door.lock().unwrap().clone();
        let Some(door) = door else {
            return Err(CallError::NotSent("payments is down".into()));
        };
        let (tx, rx) = oneshot::channel();
        door.send((req.clone(), tx))
            .await
            .map_err(|_| CallError::NotSent("payments is down".into()))?;
        match tokio::time::timeout(CALL_TIMEOUT, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(CallError::NoReply("payments went away".into())),
            Err(_) => Err(CallError::NoReply("timed out".into())),
        }
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
