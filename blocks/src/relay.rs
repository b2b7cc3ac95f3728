//! The outbox relay: tails a DB change feed through a replication slot and,
//! for each row inserted into the outbox table, performs the call the row
//! describes (to a service outside the DB: a third-party API, say).
//!
//! The row is written in the same transaction as the effect it belongs to,
//! so the call is never lost and never made for an effect that rolled back.
//! The relay confirms a position to the slot only after every call up to it
//! succeeded, so a crash in between makes it call again: delivery is at
//! least once, and the callee must dedupe (the row's key is a natural
//! idempotency key).

use crate::backoff::Backoff;
use crate::cdc::resume_position;
use async_trait::async_trait;
use pitfall_ports::{Change, ChangeFeed, ChangeOp, Env};
use std::sync::Arc;
use std::time::Duration;

/// What the relay does with one outbox row.
#[async_trait]
pub trait Outbound: Send + Sync {
    /// Make the call for this row. An error is retried until it succeeds:
    /// a row is never skipped.
    async fn send(&self, row: &Change) -> Result<(), String>;
}

/// The relay's slot, table and pacing.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    pub slot: String,
    /// The outbox table; changes of other tables are passed over.
    pub table: String,
    /// Pause after a poll that found nothing.
    pub poll_interval: Duration,
    /// Transactions read per poll.
    pub batch: usize,
}

pub struct OutboxRelay {
    feed: Arc<dyn ChangeFeed>,
    outbound: Arc<dyn Outbound>,
    env: Arc<dyn Env>,
    config: RelayConfig,
}

impl OutboxRelay {
    pub fn new(
        feed: Arc<dyn ChangeFeed>,
        outbound: Arc<dyn Outbound>,
        env: Arc<dyn Env>,
        config: RelayConfig,
    ) -> Self {
        OutboxRelay {
            feed,
            outbound,
            env,
            config,
        }
    }

    /// Relay forever: resume from the slot's confirmed position, call for
    /// each new outbox row in commit order, confirm after each batch.
    pub async fn run(self) {
        let mut backoff = Backoff::new(50, 1_000);
        let feed = self.feed.as_ref();
        let mut confirmed =
            resume_position(feed, &self.config.slot, self.env.as_ref(), &mut backoff).await;
        let mut sent = confirmed;
        loop {
            if sent > confirmed {
                match self.feed.confirm(&self.config.slot, sent).await {
                    Ok(()) => confirmed = sent,
                    Err(e) => tracing::warn!(error = %e, "relay: cannot confirm slot position"),
                }
            }
            // Waits up to a poll interval for a commit when there is none.
            let changes = match self
                .feed
                .poll_wait(
                    &self.config.slot,
                    sent,
                    self.config.batch,
                    self.config.poll_interval,
                )
                .await
            {
                Ok(changes) => changes,
                Err(e) => {
                    tracing::warn!(error = %e, "relay: cannot read changes");
                    backoff.wait(self.env.as_ref()).await;
                    continue;
                }
            };
            backoff.reset();
            if changes.is_empty() {
                continue;
            }
            for change in &changes {
                if change.table == self.config.table && change.op == ChangeOp::Insert {
                    self.send(change).await;
                }
            }
            sent = changes.iter().map(|c| c.lsn).fold(sent, u64::max);
        }
    }

    /// Call for one row until the call succeeds.
    async fn send(&self, change: &Change) {
        let mut backoff = Backoff::new(50, 2_000);
        while let Err(e) = self.outbound.send(change).await {
            tracing::debug!(error = %e, key = change.key, "relay: call failed; retrying");
            backoff.wait(self.env.as_ref()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitfall_ports::{DbError, Lsn};
    use serde_json::json;
    use std::sync::Mutex;

    /// A change log with one slot, whose confirmed position survives a
    /// relay's crash (the relay task dropped).
    #[derive(Default)]
    struct Log {
        changes: Vec<Change>,
        confirmed: Mutex<Lsn>,
    }

    #[async_trait]
    impl ChangeFeed for Log {
        async fn confirmed(&self, _slot: &str) -> Result<Lsn, DbError> {
            Ok(*self.confirmed.lock().unwrap())
        }
        async fn poll(&self, _slot: &str, after: Lsn, max: usize) -> Result<Vec<Change>, DbError> {
            Ok(self
                .changes
                .iter()
                .filter(|c| c.lsn > after)
                .take(max)
                .cloned()
                .collect())
        }
        async fn confirm(&self, _slot: &str, lsn: Lsn) -> Result<(), DbError> {
            *self.confirmed.lock().unwrap() = lsn;
            Ok(())
        }
    }

    /// Records each call; fails the first `fail` of them.
    #[derive(Default)]
    struct Calls {
        made: Mutex<Vec<String>>,
        fail: Mutex<u32>,
    }

    #[async_trait]
    impl Outbound for Calls {
        async fn send(&self, row: &Change) -> Result<(), String> {
            let mut fail = self.fail.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return Err("no answer".into());
            }
            self.made.lock().unwrap().push(row.key.clone());
            Ok(())
        }
    }

    struct TokioEnv;

    #[async_trait]
    impl Env for TokioEnv {
        fn now_ms(&self) -> u64 {
            0
        }
        async fn sleep(&self, duration: Duration) {
            tokio::time::sleep(duration).await;
        }
        fn random_u64(&self) -> u64 {
            7
        }
        fn mark(&self, _event: &str) {}
    }

    fn change(lsn: Lsn, table: &str, key: &str) -> Change {
        Change {
            lsn,
            table: table.into(),
            key: key.into(),
            op: ChangeOp::Insert,
            version: 1,
            data: json!({}),
        }
    }

    fn relay(log: &Arc<Log>, calls: &Arc<Calls>) -> OutboxRelay {
        let config = RelayConfig {
            slot: "s".into(),
            table: "outbox".into(),
            poll_interval: Duration::from_millis(100),
            batch: 10,
        };
        OutboxRelay::new(log.clone(), calls.clone(), Arc::new(TokioEnv), config)
    }

    #[tokio::test(start_paused = true)]
    async fn calls_each_outbox_row_in_order_retrying_failures_and_confirms_after() {
        let log = Arc::new(Log {
            changes: vec![
                change(1, "outbox", "a"),
                change(2, "stock", "apple"),
                change(3, "outbox", "b"),
            ],
            ..Log::default()
        });
        let calls = Arc::new(Calls {
            fail: Mutex::new(2),
            ..Calls::default()
        });
        let task = tokio::spawn(relay(&log, &calls).run());
        tokio::time::sleep(Duration::from_secs(5)).await;
        task.abort();
        assert_eq!(*calls.made.lock().unwrap(), vec!["a", "b"]);
        assert_eq!(*log.confirmed.lock().unwrap(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_restarted_relay_resumes_after_the_confirmed_position() {
        let log = Arc::new(Log {
            changes: vec![change(1, "outbox", "a"), change(2, "outbox", "b")],
            confirmed: Mutex::new(1),
        });
        let calls = Arc::new(Calls::default());
        let task = tokio::spawn(relay(&log, &calls).run());
        tokio::time::sleep(Duration::from_secs(1)).await;
        task.abort();
        assert_eq!(*calls.made.lock().unwrap(), vec!["b"]);
    }
}
