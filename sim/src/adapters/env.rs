//! The time/randomness port in simulation: turmoil's simulated clock, a
//! generator seeded from the run's seed, the host and its incarnation, and
//! coverage marks recorded in the run's history under the host's name.

use async_trait::async_trait;
use pitfall_harness::history::History;
use pitfall_harness::seed::SimRng;
use pitfall_ports::Env;
use rand::RngCore;
use std::sync::Mutex;
use std::time::Duration;

pub struct SimEnv {
    rng: Mutex<SimRng>,
    host: String,
    history: History,
}

impl SimEnv {
    pub fn new(rng: SimRng, host: &str, history: History) -> Self {
        SimEnv {
            rng: Mutex::new(rng),
            host: host.to_string(),
            history,
        }
    }
}

#[async_trait]
impl Env for SimEnv {
    fn now_ms(&self) -> u64 {
        turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64
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
