//! `kafka-eos`'s downstream reader: a `read_committed` consumer of the
//! inventory's reserved events (it would tell the shopper). It has no
//! effect of its own; it is there so that every reserved event is read, and
//! the queue checker sees what a downstream service of a transactional
//! producer sees.

use pitfall_blocks::consume::Poller;
use pitfall_ports::{Consumer, Env};
use std::sync::Arc;

/// The notifier's consumer group.
pub const GROUP: &str = "notifier";

/// Read every reserved event, committing as it goes.
pub async fn run(consumer: Box<dyn Consumer>, env: Arc<dyn Env>) {
    let mut poller = Poller::new(consumer, env, "notifier");
    loop {
        for record in poller.next().await {
            tracing::info!(
                key = record.key,
                offset = record.offset,
                "notifier: reserved"
            );
            poller.handled(&record.topic, record.partition, record.offset + 1);
        }
    }
}
