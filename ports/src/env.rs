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
    /// Something interesting happened here: a coverage ("sometimes")
    /// event, such as a stale update discarded. The harness records it in
    /// the history (once per process and name) so a sweep can prove it
    /// happened; an environment outside the harness ignores it.
    fn mark(&self, _event: &str) {}
}
