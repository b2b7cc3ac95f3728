//! Crash and fail points, BUGGIFY-style: at each boundary of a service's
//! "do the effect, then acknowledge it" chain — before and after every DB
//! commit, produce, offset commit, slot confirm, object put and delete — a
//! fault window may switch on "crash here" or "fail this call here" with a
//! probability. A bug that swaps two steps hides from crashes at random
//! moments; it does not hide from a crash that lands exactly between them.
//!
//! The windows are ordinary fault windows (kinds `crash-point` and
//! `fail-point`, target a [`Boundary`]), so plans, plan files, repro and
//! shrink keep them. A mode's nemesis switches them in [`ActivePoints`]; the
//! port decorators of [`WithCrashPoints`] consult them on every call, draw
//! from the host's seeded [`Env`], and mark each firing as a coverage event
//! (`crash-point:<boundary>`, `fail-point:<boundary>`).
//!
//! - A crash point asks the mode to crash the host, then never returns:
//!   nothing after the boundary runs in this incarnation.
//! - A fail point before a call skips it and returns a transient error; after
//!   a call it returns the error although the call took effect (an unknown
//!   outcome, as a lost reply gives).

use crate::rpc::{RpcClient, RpcListener};
use crate::system::Infra;
use async_trait::async_trait;
use pitfall_ports::{
    Blob, Broker, ChangeFeed, ConsumeError, Consumer, ConsumerConfig, ConsumerRecord, Database,
    DbError, Delivery, Env, GroupMetadata, LogReader, Lsn, ObjectStore, ProduceError, Producer,
    ProducerConfig, ProducerRecord, Row, StoreError, TopicPartitionOffset, Transaction, TxnError,
    TxnProducer,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where a point can fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Boundary {
    BeforeDbCommit,
    AfterDbCommit,
    BeforeProduce,
    AfterProduce,
    BeforeOffsetCommit,
    AfterOffsetCommit,
    BeforeSlotConfirm,
    AfterSlotConfirm,
    BeforeObjectPut,
    AfterObjectPut,
    BeforeObjectDelete,
    AfterObjectDelete,
}

impl Boundary {
    pub const ALL: [Boundary; 12] = [
        Boundary::BeforeDbCommit,
        Boundary::AfterDbCommit,
        Boundary::BeforeProduce,
        Boundary::AfterProduce,
        Boundary::BeforeOffsetCommit,
        Boundary::AfterOffsetCommit,
        Boundary::BeforeSlotConfirm,
        Boundary::AfterSlotConfirm,
        Boundary::BeforeObjectPut,
        Boundary::AfterObjectPut,
        Boundary::BeforeObjectDelete,
        Boundary::AfterObjectDelete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Boundary::BeforeDbCommit => "before-db-commit",
            Boundary::AfterDbCommit => "after-db-commit",
            Boundary::BeforeProduce => "before-produce",
            Boundary::AfterProduce => "after-produce",
            Boundary::BeforeOffsetCommit => "before-offset-commit",
            Boundary::AfterOffsetCommit => "after-offset-commit",
            Boundary::BeforeSlotConfirm => "before-slot-confirm",
            Boundary::AfterSlotConfirm => "after-slot-confirm",
            Boundary::BeforeObjectPut => "before-object-put",
            Boundary::AfterObjectPut => "after-object-put",
            Boundary::BeforeObjectDelete => "before-object-delete",
            Boundary::AfterObjectDelete => "after-object-delete",
        }
    }

    pub fn from_name(name: &str) -> Option<Boundary> {
        Boundary::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Whether a system with these links can reach this boundary at all:
    /// object-store boundaries need a host that talks to the store, slot
    /// confirms a DB with a slot.
    pub fn reachable(self, uses_store: bool, has_slots: bool) -> bool {
        match self {
            Boundary::BeforeObjectPut
            | Boundary::AfterObjectPut
            | Boundary::BeforeObjectDelete
            | Boundary::AfterObjectDelete => uses_store,
            Boundary::BeforeSlotConfirm | Boundary::AfterSlotConfirm => has_slots,
            _ => true,
        }
    }

    /// Its two coverage events (the crash point fired, the fail point
    /// fired) and what each means.
    pub fn events(self) -> [(String, String); 2] {
        [Action::Crash, Action::Fail].map(|a| (a.event(self), a.describe(self)))
    }
}

/// What a point does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Crash,
    Fail,
}

impl Action {
    /// The coverage event of this action at `boundary`.
    pub fn event(self, boundary: Boundary) -> String {
        match self {
            Action::Crash => format!("crash-point:{}", boundary.name()),
            Action::Fail => format!("fail-point:{}", boundary.name()),
        }
    }

    fn describe(self, boundary: Boundary) -> String {
        let at = boundary.name().replace('-', " ");
        match self {
            Action::Crash => format!("a host crashed {at}"),
            Action::Fail => format!("a call failed {at}"),
        }
    }
}

/// A crash point's window target: `<host>@<boundary>` (a scenario lets
/// only the hosts it allows to crash crash at a boundary). A fail point's
/// target is the boundary alone: any host's call may fail there.
pub fn crash_target(host: &str, boundary: Boundary) -> String {
    format!("{host}@{}", boundary.name())
}

/// A window target's host (crash points) and boundary.
pub fn parse_target(target: &str) -> Option<(Option<&str>, Boundary)> {
    match target.split_once('@') {
        Some((host, b)) => Some((Some(host), Boundary::from_name(b)?)),
        None => Some((None, Boundary::from_name(target)?)),
    }
}

/// Which point: the host it is limited to (`None`: every host), where, and
/// what it does.
type PointKey = (Option<String>, Boundary, Action);

/// The points switched on now, with their probabilities: the nemesis
/// writes, the decorators read. One run shares one.
#[derive(Clone, Debug, Default)]
pub struct ActivePoints(Arc<Mutex<BTreeMap<PointKey, f64>>>);

impl ActivePoints {
    /// Switch a point on with `probability`, or off with `None`.
    pub fn set(
        &self,
        host: Option<&str>,
        boundary: Boundary,
        action: Action,
        probability: Option<f64>,
    ) {
        let key = (host.map(str::to_string), boundary, action);
        let mut points = self.0.lock().unwrap();
        match probability {
            Some(p) => points.insert(key, p),
            None => points.remove(&key),
        };
    }

    /// Apply a crash-point or fail-point window: on at the window's
    /// probability when it starts, off when it stops. Both modes' nemeses
    /// call this.
    pub fn apply_window(&self, w: &crate::faults::FaultWindow, start: bool) {
        use crate::faults::FaultKind;
        let (host, boundary) = parse_target(&w.target).expect("points target a boundary");
        let action = if w.kind == FaultKind::CrashPoint {
            Action::Crash
        } else {
            Action::Fail
        };
        let p = start.then(|| w.probability.unwrap_or(0.0));
        self.set(host, boundary, action, p);
    }

    /// Switch every point off (the heal).
    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }

    /// The probability of `action` at `boundary` for `host`: a point limited
    /// to the host, else one for every host.
    fn probability(&self, host: &str, boundary: Boundary, action: Action) -> Option<f64> {
        let points = self.0.lock().unwrap();
        points
            .get(&(Some(host.to_string()), boundary, action))
            .or_else(|| points.get(&(None, boundary, action)))
            .copied()
    }
}

/// How a host asks its mode to crash it (the mode restarts it).
pub type CrashRequest = Arc<dyn Fn(Boundary) + Send + Sync>;

/// One host incarnation's view of the points.
#[derive(Clone)]
pub struct Points {
    host: String,
    active: ActivePoints,
    env: Arc<dyn Env>,
    crash: CrashRequest,
}

/// A fail point fired: the call fails.
struct Failed;

impl Points {
    pub fn new(host: &str, active: ActivePoints, env: Arc<dyn Env>, crash: CrashRequest) -> Self {
        Points {
            host: host.to_string(),
            active,
            env,
            crash,
        }
    }

    /// Whether `action` fires at `boundary` now: only a point switched on
    /// draws from the host's generator, so runs without points draw nothing.
    fn fires(&self, boundary: Boundary, action: Action) -> bool {
        let Some(p) = self.active.probability(&self.host, boundary, action) else {
            return false;
        };
        let fired = (self.env.random_u64() as f64 / u64::MAX as f64) < p;
        if fired {
            self.env.mark(&action.event(boundary));
        }
        fired
    }

    /// Pass `boundary`: crash here (never returns), fail here, or go on.
    async fn at(&self, boundary: Boundary) -> Result<(), Failed> {
        if self.fires(boundary, Action::Crash) {
            (self.crash)(boundary);
            std::future::pending::<()>().await;
        }
        if self.fires(boundary, Action::Fail) {
            return Err(Failed);
        }
        Ok(())
    }

    /// Run `call` between its two boundaries. A fail point before it skips
    /// it; one after it discards its result. `fail` makes the error.
    async fn around<T, E>(
        &self,
        before: Boundary,
        after: Boundary,
        call: impl std::future::Future<Output = Result<T, E>>,
        fail: impl Fn(Boundary) -> E,
    ) -> Result<T, E> {
        self.at(before).await.map_err(|_| fail(before))?;
        let result = call.await?;
        self.at(after).await.map_err(|_| fail(after))?;
        Ok(result)
    }
}

fn message(boundary: Boundary) -> String {
    format!("fail point {}", boundary.name())
}

/// A host's infrastructure with every port wrapped in the points.
pub struct WithCrashPoints<'a> {
    inner: &'a dyn Infra,
    points: Points,
}

impl<'a> WithCrashPoints<'a> {
    pub fn new(inner: &'a dyn Infra, points: Points) -> Self {
        WithCrashPoints { inner, points }
    }
}

impl Infra for WithCrashPoints<'_> {
    fn host(&self) -> &str {
        self.inner.host()
    }

    fn db(&self, name: &str) -> Arc<dyn Database> {
        Arc::new(PointDb {
            inner: self.inner.db(name),
            points: self.points.clone(),
        })
    }

    fn feed(&self, name: &str) -> Arc<dyn ChangeFeed> {
        Arc::new(PointFeed {
            inner: self.inner.feed(name),
            points: self.points.clone(),
        })
    }

    fn broker(&self) -> Arc<dyn Broker> {
        Arc::new(PointBroker {
            inner: self.inner.broker(),
            points: self.points.clone(),
        })
    }

    fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(PointStore {
            inner: self.inner.store(),
            points: self.points.clone(),
        })
    }

    fn env(&self) -> Arc<dyn Env> {
        self.inner.env()
    }

    fn listen(&self) -> Box<dyn RpcListener> {
        self.inner.listen()
    }

    fn rpc(&self) -> Arc<dyn RpcClient> {
        self.inner.rpc()
    }
}

struct PointDb {
    inner: Arc<dyn Database>,
    points: Points,
}

#[async_trait]
impl Database for PointDb {
    async fn begin(&self) -> Result<Box<dyn Transaction>, DbError> {
        Ok(Box::new(PointTx {
            inner: self.inner.begin().await?,
            points: self.points.clone(),
        }))
    }
}

struct PointTx {
    inner: Box<dyn Transaction>,
    points: Points,
}

#[async_trait]
impl Transaction for PointTx {
    async fn get(&mut self, table: &str, key: &str) -> Result<Option<Row>, DbError> {
        self.inner.get(table, key).await
    }

    async fn insert(&mut self, table: &str, key: &str, data: Value) -> Result<(), DbError> {
        self.inner.insert(table, key, data).await
    }

    async fn insert_bytes(
        &mut self,
        table: &str,
        key: &str,
        data: Value,
        bytes: pitfall_ports::Blob,
    ) -> Result<(), DbError> {
        self.inner.insert_bytes(table, key, data, bytes).await
    }

    async fn get_bytes(
        &mut self,
        table: &str,
        key: &str,
    ) -> Result<Option<Option<pitfall_ports::Blob>>, DbError> {
        self.inner.get_bytes(table, key).await
    }

    async fn update(
        &mut self,
        table: &str,
        key: &str,
        expected_version: u64,
        data: Value,
    ) -> Result<bool, DbError> {
        self.inner.update(table, key, expected_version, data).await
    }

    async fn delete(&mut self, table: &str, key: &str) -> Result<bool, DbError> {
        self.inner.delete(table, key).await
    }

    async fn commit(self: Box<Self>) -> Result<(), DbError> {
        let PointTx { inner, points } = *self;
        if points.at(Boundary::BeforeDbCommit).await.is_err() {
            inner.rollback().await;
            return Err(DbError::Unavailable(message(Boundary::BeforeDbCommit)));
        }
        inner.commit().await?;
        match points.at(Boundary::AfterDbCommit).await {
            Ok(()) => Ok(()),
            Err(Failed) => Err(DbError::CommitOutcomeUnknown(message(
                Boundary::AfterDbCommit,
            ))),
        }
    }

    async fn rollback(self: Box<Self>) {
        self.inner.rollback().await
    }
}

struct PointFeed {
    inner: Arc<dyn ChangeFeed>,
    points: Points,
}

#[async_trait]
impl ChangeFeed for PointFeed {
    async fn confirmed(&self, slot: &str) -> Result<Lsn, DbError> {
        self.inner.confirmed(slot).await
    }

    async fn poll(
        &self,
        slot: &str,
        after: Lsn,
        max: usize,
    ) -> Result<Vec<pitfall_ports::Change>, DbError> {
        self.inner.poll(slot, after, max).await
    }

    async fn poll_wait(
        &self,
        slot: &str,
        after: Lsn,
        max: usize,
        max_wait: Duration,
    ) -> Result<Vec<pitfall_ports::Change>, DbError> {
        self.inner.poll_wait(slot, after, max, max_wait).await
    }

    async fn confirm(&self, slot: &str, lsn: Lsn) -> Result<(), DbError> {
        self.points
            .around(
                Boundary::BeforeSlotConfirm,
                Boundary::AfterSlotConfirm,
                self.inner.confirm(slot, lsn),
                |b| DbError::Unavailable(message(b)),
            )
            .await
    }
}

struct PointBroker {
    inner: Arc<dyn Broker>,
    points: Points,
}

impl Broker for PointBroker {
    fn producer(&self, config: &ProducerConfig) -> Arc<dyn Producer> {
        Arc::new(PointProducer {
            inner: self.inner.producer(config),
            points: self.points.clone(),
        })
    }

    fn consumer(&self, config: &ConsumerConfig) -> Box<dyn Consumer> {
        Box::new(PointConsumer {
            inner: self.inner.consumer(config),
            points: self.points.clone(),
        })
    }

    fn reader(&self) -> Arc<dyn LogReader> {
        self.inner.reader()
    }

    fn txn_producer(
        &self,
        transactional_id: &str,
        config: &ProducerConfig,
        timeout_ms: u64,
    ) -> Box<dyn TxnProducer> {
        Box::new(PointTxnProducer {
            inner: self
                .inner
                .txn_producer(transactional_id, config, timeout_ms),
            points: self.points.clone(),
        })
    }
}

/// A transactional producer's sends pass the produce boundaries, and its
/// commit (which commits the consumer offsets) the offset-commit ones.
struct PointTxnProducer {
    inner: Box<dyn TxnProducer>,
    points: Points,
}

#[async_trait]
impl TxnProducer for PointTxnProducer {
    async fn begin(&mut self) -> Result<(), TxnError> {
        self.inner.begin().await
    }

    async fn send(&mut self, record: ProducerRecord) -> Result<Delivery, TxnError> {
        let points = self.points.clone();
        points
            .around(
                Boundary::BeforeProduce,
                Boundary::AfterProduce,
                self.inner.send(record),
                |b| TxnError::Abortable(message(b)),
            )
            .await
    }

    async fn send_offsets(
        &mut self,
        group: &GroupMetadata,
        offsets: &[TopicPartitionOffset],
    ) -> Result<(), TxnError> {
        self.inner.send_offsets(group, offsets).await
    }

    async fn commit(&mut self) -> Result<(), TxnError> {
        let points = self.points.clone();
        points
            .around(
                Boundary::BeforeOffsetCommit,
                Boundary::AfterOffsetCommit,
                self.inner.commit(),
                |b| TxnError::Abortable(message(b)),
            )
            .await
    }

    async fn abort(&mut self) -> Result<(), TxnError> {
        self.inner.abort().await
    }
}

struct PointProducer {
    inner: Arc<dyn Producer>,
    points: Points,
}

#[async_trait]
impl Producer for PointProducer {
    async fn send(&self, record: ProducerRecord) -> Result<Delivery, ProduceError> {
        self.points
            .around(
                Boundary::BeforeProduce,
                Boundary::AfterProduce,
                self.inner.send(record),
                |b| ProduceError::Timeout(message(b)),
            )
            .await
    }
}

struct PointConsumer {
    inner: Box<dyn Consumer>,
    points: Points,
}

#[async_trait]
impl Consumer for PointConsumer {
    async fn poll(&mut self, max_wait: Duration) -> Result<Vec<ConsumerRecord>, ConsumeError> {
        self.inner.poll(max_wait).await
    }

    async fn commit(&mut self, offsets: &[TopicPartitionOffset]) -> Result<(), ConsumeError> {
        let points = self.points.clone();
        points
            .around(
                Boundary::BeforeOffsetCommit,
                Boundary::AfterOffsetCommit,
                self.inner.commit(offsets),
                |b| ConsumeError::Unavailable(message(b)),
            )
            .await
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

struct PointStore {
    inner: Arc<dyn ObjectStore>,
    points: Points,
}

#[async_trait]
impl ObjectStore for PointStore {
    async fn put(&self, key: &str, data: Blob) -> Result<(), StoreError> {
        self.points
            .around(
                Boundary::BeforeObjectPut,
                Boundary::AfterObjectPut,
                self.inner.put(key, data),
                |b| StoreError::Unavailable(message(b)),
            )
            .await
    }

    async fn get(&self, key: &str) -> Result<Option<Blob>, StoreError> {
        self.inner.get(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.points
            .around(
                Boundary::BeforeObjectDelete,
                Boundary::AfterObjectDelete,
                self.inner.delete(key),
                |b| StoreError::Unavailable(message(b)),
            )
            .await
    }
}
