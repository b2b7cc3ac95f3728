//! What stands in for hosts in real mode: the time/randomness port, the
//! hosts' in-process front doors and the calls between them (which a
//! partition can cut, and the `api-*` faults refuse, delay or answer into
//! the void), and the consumer decorator that crashes a host between
//! applying an effect and committing its offset.

use async_trait::async_trait;
use pitfall_harness::history::History;
use pitfall_harness::rpc::{CallError, Request, RpcClient, RpcListener};
use pitfall_harness::seed::SimRng;
use pitfall_ports::{
    coverage, ConsumeError, Consumer, ConsumerRecord, Delivery, Env, GroupMetadata, ProducerRecord,
    TopicPartitionOffset, TxnError, TxnProducer,
};
use rand::{Rng, RngCore};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Real time since the run started and a generator seeded from the run's
/// seed: the workload's random choices replay, the timing does not.
pub struct RealEnv {
    start: tokio::time::Instant,
    rng: Mutex<SimRng>,
    host: String,
    history: History,
}

impl RealEnv {
    pub fn new(start: tokio::time::Instant, rng: SimRng, host: &str, history: History) -> Self {
        RealEnv {
            start,
            rng: Mutex::new(rng),
            host: host.to_string(),
            history,
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

    fn mark(&self, event: &str) {
        self.history.mark(&self.host, event);
    }
}

/// A front door's fault switch, set by the `api-*` windows.
#[derive(Clone, Debug, Default)]
pub struct DoorFaults {
    /// Refuse every call.
    pub down: bool,
    /// Delay each call by a draw from this range before the host sees it.
    pub delay_ms: Option<(u64, u64)>,
    /// Probability that the host's reply is lost after it acted.
    pub lost_reply: f64,
}

/// Every host's front door, which (caller, host) pairs a partition cuts,
/// and each door's fault switch. A door belongs to the host's current
/// incarnation: a crash drops its listener, and calls find it down until
/// the host opens it again.
#[derive(Clone)]
pub struct Front {
    doors: Arc<Mutex<BTreeMap<String, mpsc::Sender<Request>>>>,
    cut: Arc<Mutex<BTreeSet<(String, String)>>>,
    faults: Arc<Mutex<BTreeMap<String, DoorFaults>>>,
    rng: Arc<Mutex<SimRng>>,
    history: History,
}

impl Front {
    pub fn new(rng: SimRng, history: History) -> Self {
        Front {
            doors: Arc::default(),
            cut: Arc::default(),
            faults: Arc::default(),
            rng: Arc::new(Mutex::new(rng)),
            history,
        }
    }

    /// Open `host`'s door for its current incarnation.
    pub fn open(&self, host: &str) -> Box<dyn RpcListener> {
        let (tx, rx) = mpsc::channel(64);
        self.doors.lock().unwrap().insert(host.to_string(), tx);
        Box::new(Door { requests: rx })
    }

    pub fn set_cut(&self, caller: &str, host: &str, cut: bool) {
        let mut c = self.cut.lock().unwrap();
        let pair = (caller.to_string(), host.to_string());
        if cut {
            c.insert(pair);
        } else {
            c.remove(&pair);
        }
    }

    /// Change `host`'s door faults.
    pub fn set_faults(&self, host: &str, change: impl FnOnce(&mut DoorFaults)) {
        change(
            self.faults
                .lock()
                .unwrap()
                .entry(host.to_string())
                .or_default(),
        );
    }

    pub fn heal(&self) {
        self.cut.lock().unwrap().clear();
        self.faults.lock().unwrap().clear();
    }

    /// Close every door (the end of a run).
    pub fn close(&self) {
        self.doors.lock().unwrap().clear();
    }

    /// A client of the doors, calling as `caller`.
    pub fn client(&self, caller: &str) -> Arc<dyn RpcClient> {
        Arc::new(FrontClient {
            front: self.clone(),
            caller: caller.to_string(),
        })
    }

    /// What `host`'s door does to the next call: refuse it, or delay it and
    /// whether to lose its reply.
    fn roll(&self, host: &str) -> Option<(Duration, bool)> {
        let faults = self
            .faults
            .lock()
            .unwrap()
            .get(host)
            .cloned()
            .unwrap_or_default();
        if faults.down {
            return None;
        }
        let mut rng = self.rng.lock().unwrap();
        let delay_ms = faults
            .delay_ms
            .map_or(0, |(lo, hi)| rng.random_range(lo..=hi));
        let lose = faults.lost_reply > 0.0 && rng.random_bool(faults.lost_reply.min(1.0));
        Some((Duration::from_millis(delay_ms), lose))
    }
}

struct Door {
    requests: mpsc::Receiver<Request>,
}

#[async_trait]
impl RpcListener for Door {
    async fn next(&mut self) -> Option<Request> {
        self.requests.recv().await
    }
}

struct FrontClient {
    front: Front,
    caller: String,
}

#[async_trait]
impl RpcClient for FrontClient {
    async fn call(&self, host: &str, body: Value, timeout: Duration) -> Result<Value, CallError> {
        let pair = (self.caller.clone(), host.to_string());
        if self.front.cut.lock().unwrap().contains(&pair) {
            tokio::time::sleep(timeout).await;
            return Err(CallError::NotSent(format!("partitioned from {host}")));
        }
        let down = || CallError::NotSent(format!("{host} is down"));
        let (delay, lose) = self.front.roll(host).ok_or_else(down)?;
        let door = self.front.doors.lock().unwrap().get(host).cloned();
        let door = door.ok_or_else(down)?;
        let (request, reply) = Request::new(body);
        // A slow door hands the call over late, whether or not the caller
        // still waits, as a slow server would still act on it.
        let handed = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            door.send(request).await.is_ok()
        });
        let answered = async {
            if !handed.await.unwrap_or(false) {
                return Err(down());
            }
            let reply = reply
                .await
                .map_err(|_| CallError::NoReply(format!("{host} went away")))?;
            if lose {
                self.front.history.mark(host, coverage::CALL_REPLY_LOST);
                std::future::pending::<()>().await;
            }
            Ok(reply)
        };
        match tokio::time::timeout(timeout, answered).await {
            Ok(result) => result,
            Err(_) => Err(CallError::NoReply("timed out".into())),
        }
    }
}

/// Wraps a host's group consumer: when armed, its next offset commit asks
/// the supervisor to crash the host instead of committing, so the effects
/// of the batch are applied and their offsets are not.
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

    fn group_metadata(&self) -> Option<GroupMetadata> {
        self.inner.group_metadata()
    }

    fn reassigned_since_polled(
        &self,
        offsets: &[TopicPartitionOffset],
    ) -> Option<TopicPartitionOffset> {
        self.inner.reassigned_since_polled(offsets)
    }

    async fn rewind(&mut self) -> Result<(), ConsumeError> {
        self.inner.rewind().await
    }
}

/// Wraps a host's transactional producer the same way: when armed, its
/// next commit crashes the host instead, after the batch's DB effects
/// committed and before the Kafka transaction does.
pub struct CrashAtTxnCommit {
    inner: Box<dyn TxnProducer>,
    armed: Arc<AtomicBool>,
    host: String,
    crash: mpsc::UnboundedSender<String>,
}

impl CrashAtTxnCommit {
    pub fn new(
        inner: Box<dyn TxnProducer>,
        armed: Arc<AtomicBool>,
        host: &str,
        crash: mpsc::UnboundedSender<String>,
    ) -> Self {
        CrashAtTxnCommit {
            inner,
            armed,
            host: host.to_string(),
            crash,
        }
    }
}

#[async_trait]
impl TxnProducer for CrashAtTxnCommit {
    async fn begin(&mut self) -> Result<(), TxnError> {
        self.inner.begin().await
    }

    async fn send(&mut self, record: ProducerRecord) -> Result<Delivery, TxnError> {
        self.inner.send(record).await
    }

    async fn send_offsets(
        &mut self,
        group: &GroupMetadata,
        offsets: &[TopicPartitionOffset],
    ) -> Result<(), TxnError> {
        self.inner.send_offsets(group, offsets).await
    }

    async fn commit(&mut self) -> Result<(), TxnError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            let _ = self.crash.send(self.host.clone());
            // The supervisor aborts this task; never commit.
            std::future::pending::<()>().await;
        }
        self.inner.commit().await
    }

    async fn abort(&mut self) -> Result<(), TxnError> {
        self.inner.abort().await
    }
}
