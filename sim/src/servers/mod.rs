//! The simulated servers. Each runs as a turmoil host and is reached only over
//! turmoil TCP, so partitions, latency and crashes hit it as a real network
//! would. Durable state lives in an `Arc<Mutex<…>>` owned by the world and
//! captured by the host's software factory: a crash drops connections and
//! volatile state, a restart serves the same durable state again.

pub mod broker;
pub mod db;
pub mod store;

use pitfall_harness::seed::SimRng;
use rand::Rng;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Faults a server injects itself, switched by the runner per the fault plan.
/// Probabilistic faults draw from the server's own seeded generator.
#[derive(Debug)]
pub struct ServerFaults {
    /// Refuse: drop every connection at once.
    pub down: bool,
    /// Added delay before each request, drawn uniformly from this range.
    pub slow_ms: Option<(u64, u64)>,
    /// Probability that a reply after a successful commit or append is lost.
    pub lost_ack: f64,
    /// Lose the next such reply, whatever `lost_ack` says.
    pub lose_next_ack: bool,
    /// Probability that a fetch is served from the group's committed offset
    /// instead of the requested one (broker only).
    pub duplicate_delivery: f64,
    /// Probability that a produce is held, then refused as retriable, so a
    /// later in-flight request overtakes it (broker only).
    pub reorder: f64,
    rng: SimRng,
}

pub type SharedFaults = Arc<Mutex<ServerFaults>>;

impl ServerFaults {
    pub fn new(rng: SimRng) -> Self {
        ServerFaults {
            down: false,
            slow_ms: None,
            lost_ack: 0.0,
            lose_next_ack: false,
            duplicate_delivery: 0.0,
            reorder: 0.0,
            rng,
        }
    }

    pub fn shared(rng: SimRng) -> SharedFaults {
        Arc::new(Mutex::new(ServerFaults::new(rng)))
    }

    /// True with probability `p`. Draws only when `p > 0`, so a fault kind
    /// that is off does not consume randomness.
    pub fn roll(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_bool(p.min(1.0))
    }

    pub fn slow_delay(&mut self) -> Option<Duration> {
        let (lo, hi) = self.slow_ms?;
        Some(Duration::from_millis(self.rng.random_range(lo..=hi)))
    }

    /// Whether to lose this reply after a successful commit or append.
    pub fn lose_ack(&mut self) -> bool {
        if std::mem::take(&mut self.lose_next_ack) {
            return true;
        }
        let p = self.lost_ack;
        self.roll(p)
    }

    /// A uniform draw in `lo..=hi` milliseconds.
    pub fn draw_ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.rng.random_range(lo..=hi)
    }

    pub fn heal(&mut self) {
        self.down = false;
        self.slow_ms = None;
        self.lost_ack = 0.0;
        self.lose_next_ack = false;
        self.duplicate_delivery = 0.0;
        self.reorder = 0.0;
    }
}

/// What a server does before handling a request: wait if slow, and say
/// whether to drop the connection because the server is down.
pub async fn before_request(faults: &SharedFaults) -> bool {
    let delay = faults.lock().unwrap().slow_delay();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    !faults.lock().unwrap().down
}

/// The host name of a peer, for history records.
pub fn peer_name(peer: std::net::SocketAddr) -> String {
    turmoil::reverse_lookup(peer.ip()).unwrap_or_else(|| peer.ip().to_string())
}
