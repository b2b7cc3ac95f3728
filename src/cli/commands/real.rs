//! The real-mode half of `pitfall run`: check the services, then run the
//! seeds against them.

use super::run::Args;
use crate::cli::BAD_INPUT;
use pitfall_harness::scenario::Scenario;
use pitfall_harness::sweep::{SeedSummary, Shard};
use pitfall_real::runner::RealWorld;
use pitfall_real::sweep::{self, RealDetails, RealOptions};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Run the sweep in real mode, or return the exit code for unusable services.
pub fn run(
    args: &Args,
    scenarios: &[Scenario],
    skip: Arc<BTreeSet<(usize, u64)>>,
    shard: Shard,
    progress: &mut dyn FnMut(&SeedSummary),
) -> Result<Vec<RealDetails>, u8> {
    if std::env::var_os(pitfall_real::kafka::RDKAFKA_DEBUG_ENV).is_some() {
        super::logs::rdkafka_to_stderr();
    }
    // Services, shoppers, proxies and rdkafka's blocking calls share these
    // workers: more than the cores, so a blocked one never stalls the run.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let world = match RealWorld::connect(args.real_targets()).await {
            Ok(w) => Arc::new(w),
            Err(e) => {
                eprintln!("error: {e}");
                return Err(BAD_INPUT);
            }
        };
        eprintln!("real mode: seeds reproduce the fault plan and the workload, not the timing; seeds run one at a time");
        if !world.broker_proxied {
            eprintln!(
                "warning: the broker advertises {:?}, not the fault proxy {}; broker faults will be skipped",
                world.advertised,
                world.targets.kafka_proxy
            );
        }
        let (start_seed, seeds) = args.seeds();
        let opts = RealOptions {
            seeds,
            start_seed,
            skip,
            shard,
            history_dir: args.report_dir().join("histories"),
        };
        Ok(sweep::run(world, scenarios, &opts, progress).await.1)
    })
}
