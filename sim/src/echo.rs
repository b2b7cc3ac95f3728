//! A bare turmoil echo: the benchmark's baseline for what a frame costs the
//! simulator with nothing of pitfall around it. A client host sends frames
//! to a server host one at a time, and the server sends each back, over the
//! same length-delimited framing as the simulated services, on the same
//! tick. The benchmark compares a scenario's CPU time with this echo's for
//! the same number of frames.

use crate::wire;
use crate::world::StepStats;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use turmoil::net::{TcpListener, TcpStream};

const PORT: u16 = 7000;
/// The size of one echoed frame: a small request, as most of a run's are.
const FRAME_BYTES: usize = 200;

/// Echo `frames` frames (rounded up to whole round trips) on a turmoil tick
/// of `tick_ms`, with 1–5 ms of latency per message; what stepping it cost.
pub fn run(frames: u64, tick_ms: u64, seed: u64) -> StepStats {
    let round_trips = frames.div_ceil(2);
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(365 * 24 * 3600))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(5))
        .tick_duration(Duration::from_millis(tick_ms))
        .build();
    sim.host("echo-server", || async {
        let listener = TcpListener::bind(("0.0.0.0", PORT)).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                let mut conn = wire::framed(stream);
                while let Some(Ok(frame)) = conn.next().await {
                    if conn.send(frame.freeze()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    sim.client("echo-client", async move {
        let mut conn = wire::framed(TcpStream::connect(("echo-server", PORT)).await?);
        let frame = bytes::Bytes::from(vec![b'x'; FRAME_BYTES]);
        for _ in 0..round_trips {
            conn.send(frame.clone()).await?;
            conn.next().await.ok_or("the echo server closed")??;
        }
        Ok(())
    });
    let mut stats = StepStats {
        frames: round_trips * 2,
        ..StepStats::default()
    };
    while !sim.step().expect("the echo simulation runs") {
        stats.steps += 1;
    }
    stats.steps += 1;
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echo_runs_every_round_trip_and_counts_its_steps() {
        let stats = run(20, 5, 1);
        assert_eq!(stats.frames, 20);
        // Each round trip takes at least 2 ms of latency: more than one step.
        assert!(stats.steps >= 2, "{stats:?}");
    }
}
