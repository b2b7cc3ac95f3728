//! A TCP fault proxy between services and a real server (the broker or
//! Postgres). It injects the fault plan's network faults: refuse new
//! connections, blackhole (hold all traffic; connections are reset when it
//! ends), added latency per chunk, a response lost after its request was
//! forwarded (the connection is cut instead of delivering it), and a reset of
//! every open connection.

use pitfall_harness::seed::SimRng;
use rand::Rng;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The faults currently switched on.
#[derive(Debug)]
pub struct ProxyFaults {
    pub refuse: bool,
    pub blackhole: bool,
    pub latency_ms: Option<(u64, u64)>,
    /// Probability that a chunk from the server is dropped and the
    /// connection cut.
    pub lost_response: f64,
    /// Drop the next chunk from the server, whatever `lost_response` says.
    pub lose_next_response: bool,
    rng: SimRng,
}

impl ProxyFaults {
    fn healthy(rng: SimRng) -> Self {
        ProxyFaults {
            refuse: false,
            blackhole: false,
            latency_ms: None,
            lost_response: 0.0,
            lose_next_response: false,
            rng,
        }
    }
}

struct Shared {
    faults: Mutex<ProxyFaults>,
    /// Bumped to cut every open connection.
    resets: watch::Sender<u64>,
    upstream: String,
}

/// A running proxy. Dropping it stops accepting; open connections end when
/// either side closes.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.reset_connections();
    }
}

impl FaultProxy {
    /// Listen on `listen` (use port 0 for any) and forward to `upstream`.
    pub async fn start(listen: &str, upstream: &str, rng: SimRng) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (resets, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            faults: Mutex::new(ProxyFaults::healthy(rng)),
            resets,
            upstream: upstream.to_string(),
        });
        let s = shared.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if s.faults.lock().unwrap().refuse {
                    drop(client);
                    continue;
                }
                tokio::spawn(pipe(client, s.clone()));
            }
        });
        Ok(FaultProxy {
            addr,
            shared,
            accept,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Change the faults.
    pub fn set(&self, f: impl FnOnce(&mut ProxyFaults)) {
        f(&mut self.shared.faults.lock().unwrap());
    }

    /// Cut every open connection.
    pub fn reset_connections(&self) {
        self.shared.resets.send_modify(|g| *g += 1);
    }

    /// Stop every fault.
    pub fn heal(&self) {
        self.set(|f| {
            f.refuse = false;
            f.blackhole = false;
            f.latency_ms = None;
            f.lost_response = 0.0;
            f.lose_next_response = false;
        });
    }
}

async fn pipe(client: TcpStream, shared: Arc<Shared>) {
    let mut resets = shared.resets.subscribe();
    resets.mark_unchanged();
    let Ok(server) = TcpStream::connect(&shared.upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = forward(cr, sw, shared.clone(), false);
    let down = forward(sr, cw, shared.clone(), true);
    // The first direction to end (EOF, error, lost response) ends both.
    tokio::select! {
        _ = async { tokio::try_join!(up, down) } => {}
        _ = resets.changed() => {}
    }
}

async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shared: Arc<Shared>,
    from_server: bool,
) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        // Hold traffic while blackholed; the runner resets connections when
        // the blackhole ends.
        while shared.faults.lock().unwrap().blackhole {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (delay, lose) = {
            let mut f = shared.faults.lock().unwrap();
            let delay = f.latency_ms.map(|(lo, hi)| f.rng.random_range(lo..=hi));
            let p = f.lost_response;
            let lose = from_server
                && (std::mem::take(&mut f.lose_next_response)
                    || (p > 0.0 && f.rng.random_bool(p.min(1.0))));
            (delay, lose)
        };
        if let Some(ms) = delay {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if lose {
            return Err(io::Error::other("response dropped by the fault proxy"));
        }
        to.write_all(&buf[..n]).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(addr: SocketAddr) -> io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        tokio::time::timeout(Duration::from_millis(500), s.read_exact(&mut buf))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        Ok(buf.to_vec())
    }

    #[tokio::test]
    async fn forwards_refuses_and_loses_responses() {
        let upstream = echo_server().await;
        let proxy = FaultProxy::start(
            "127.0.0.1:0",
            &upstream.to_string(),
            SimRng::seed_from_u64(1),
        )
        .await
        .unwrap();
        assert_eq!(round_trip(proxy.addr()).await.unwrap(), b"ping");

        proxy.set(|f| f.refuse = true);
        assert!(round_trip(proxy.addr()).await.is_err(), "refused");

        proxy.heal();
        proxy.set(|f| f.lost_response = 1.0);
        assert!(
            round_trip(proxy.addr()).await.is_err(),
            "the echo never comes back"
        );

        proxy.heal();
        proxy.set(|f| f.blackhole = true);
        assert!(round_trip(proxy.addr()).await.is_err(), "held");
        proxy.heal();
        proxy.reset_connections();
        assert_eq!(round_trip(proxy.addr()).await.unwrap(), b"ping");
    }
}
