//! The time and randomness port. In the simulation, time is turmoil's
//! simulated clock and randomness comes from the seed; services must take
//! both from here (or from tokio time), never from the OS.

use async_trait::async_trait;
use std::time::Duration;

#[async_trait]
pub trait Env: Send + Sync {
    /// Milliseconds since the run started.
    fn now_ms(&self) -> u64;
    async fn sleep(&self, duration: Duration);
    /// A random number from the seeded generator this process was handed.
    fn random_u64(&self) -> u64;
}
