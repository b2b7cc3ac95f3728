//! Skipping idle hosts and quiet steps changes what a seed costs, never what
//! it does: under the default stepping a seed's history is byte-identical
//! to the one it has when every host is ticked on every step (turmoil's own
//! stepping), and the default stepping does skip.

use pitfall_harness::history::{first_divergence, to_jsonl};
use pitfall_harness::scenario::load_file;
use pitfall_harness::sweep::Limits;
use pitfall_harness::system::Registry;
use pitfall_sim::runner::run_seed_stepping;
use pitfall_sim::world::Stepping;
use pitfall_system::Shop;
use std::path::Path;
use std::sync::Arc;

/// Scenarios with different shapes: CDC polls, transactions, crashes and
/// every remedy at once, rebalances, a payload strategy.
const SCENARIOS: [&str; 5] = [
    "1-cdc",
    "5-kafka-eos",
    "0-all-remedies",
    "5-order-naive",
    "4-claim-check-naive",
];

#[test]
fn skipping_idle_hosts_leaves_every_history_byte_identical() {
    let registry = Registry::new(vec![Arc::new(Shop)]).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    for name in SCENARIOS {
        let scenario = load_file(&dir.join(format!("{name}.toml")), &registry).unwrap();
        for seed in [3, 11] {
            let run = |stepping| run_seed_stepping(&scenario, seed, Limits::default(), stepping);
            let (every, every_stats) = run(Stepping::EveryHost);
            let (skipping, skip_stats) = run(Stepping::SkipIdle);
            let (every, skipping) = (to_jsonl(&every.history), to_jsonl(&skipping.history));
            assert!(
                every.lines().count() > 100,
                "{name} seed {seed} did something"
            );
            assert_eq!(
                first_divergence(&every, &skipping),
                None,
                "{name} seed {seed}: skipping changed the history"
            );
            assert_eq!(every_stats.steps, skip_stats.steps, "{name} seed {seed}");
            assert_eq!(every_stats.skipped_steps, 0);
            assert!(
                skip_stats.skipped_steps > 0,
                "{name} seed {seed}: no quiet step was skipped"
            );
            assert!(
                skip_stats.host_ticks * 2 < every_stats.host_ticks,
                "{name} seed {seed}: {} host ticks skipping against {} ticking every host",
                skip_stats.host_ticks,
                every_stats.host_ticks
            );
        }
    }
}

/// A message to a crashed host waits in its link until the host runs again,
/// and no step delivers it meanwhile: it must not keep the steps of the
/// crash window from being moved over at once.
#[test]
fn mail_to_a_crashed_host_leaves_the_steps_quiet() {
    use std::time::Duration;
    use turmoil::net::UdpSocket;

    let mut sim = turmoil::Builder::new()
        .tick_duration(Duration::from_millis(5))
        .build();
    sim.host("server", || async {
        let socket = UdpSocket::bind(("0.0.0.0", 9000)).await?;
        let mut buf = [0; 8];
        loop {
            socket.recv_from(&mut buf).await?;
        }
    });
    sim.client("client", async {
        let socket = UdpSocket::bind(("0.0.0.0", 9001)).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        socket.send_to(b"ping", ("server", 9000)).await?;
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(())
    });
    sim.step().unwrap();
    sim.crash("server");
    // The client sends at 100 ms; its message is due well before 500 ms.
    while sim.elapsed() < Duration::from_millis(500) {
        sim.step().unwrap();
    }
    let quiet = sim.quiet_steps(1_000);
    assert!(
        quiet > 500,
        "only {quiet} quiet steps ahead with the client asleep for a minute"
    );
    sim.bounce("server");
    assert_eq!(sim.quiet_steps(1_000), 0, "the restarted server has mail");
}
