//! Exponential backoff with jitter taken from the seeded [`Env`], so retry
//! timing is part of the reproducible run.

use pitfall_ports::Env;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Backoff {
    base_ms: u64,
    max_ms: u64,
    attempt: u32,
}

impl Backoff {
    pub fn new(base_ms: u64, max_ms: u64) -> Self {
        Backoff {
            base_ms,
            max_ms,
            attempt: 0,
        }
    }

    /// The next delay: `base * 2^attempt`, capped, with up to 50% jitter.
    pub fn next_delay(&mut self, env: &dyn Env) -> Duration {
        let exp = self.base_ms.saturating_mul(1 << self.attempt.min(16));
        let capped = exp.min(self.max_ms).max(1);
        self.attempt = self.attempt.saturating_add(1);
        let jitter = env.random_u64() % (capped / 2 + 1);
        Duration::from_millis(capped / 2 + jitter)
    }

    pub async fn wait(&mut self, env: &dyn Env) {
        let delay = self.next_delay(env);
        env.sleep(delay).await;
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}
