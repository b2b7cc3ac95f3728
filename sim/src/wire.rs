//! The wire format between simulated services and simulated servers:
//! length-delimited frames of MessagePack over turmoil TCP, one request →
//! one reply. Bytes (record values, objects) travel as MessagePack binary,
//! not as text: a 20 MiB attachment is copied into its frame, not base64
//! encoded, escaped and decoded.

use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io;
use std::time::Duration;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use turmoil::net::TcpStream;

/// Frames up to this size: large enough for the biggest simulated payloads.
const MAX_FRAME: usize = 64 << 20;

pub type Conn = Framed<TcpStream, LengthDelimitedCodec>;

pub fn framed(stream: TcpStream) -> Conn {
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec();
    Framed::new(stream, codec)
}

pub use pitfall_harness::rpc::CallError;

pub async fn connect(addr: &str, timeout: Duration) -> Result<Conn, CallError> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => Ok(framed(stream)),
        Ok(Err(e)) => Err(CallError::NotSent(format!("connect {addr}: {e}"))),
        Err(_) => Err(CallError::NotSent(format!("connect {addr}: timed out"))),
    }
}

thread_local! {
    /// Frames sent on this thread: a seed runs on one thread, so the
    /// difference over a seed is its frame count. Read only by measurements;
    /// nothing in a run depends on it.
    static FRAMES_SENT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Frames this thread has sent so far (see [`send`]).
pub fn frames_sent() -> u64 {
    FRAMES_SENT.with(|n| n.get())
}

pub async fn send<T: Serialize>(conn: &mut Conn, msg: &T) -> io::Result<()> {
    // With field names: the messages use internally tagged enums and
    // optional fields, which need a self-describing encoding.
    let bytes = rmp_serde::to_vec_named(msg).map_err(io::Error::other)?;
    FRAMES_SENT.with(|n| n.set(n.get() + 1));
    conn.send(bytes::Bytes::from(bytes)).await
}

/// The next message, or `None` when the peer closed the connection.
pub async fn recv<T: DeserializeOwned>(conn: &mut Conn) -> io::Result<Option<T>> {
    match conn.next().await {
        None => Ok(None),
        Some(Err(e)) => Err(e),
        Some(Ok(frame)) => rmp_serde::from_slice(&frame)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
    }
}

/// Send a request and wait up to `timeout` for its reply.
pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
    conn: &mut Conn,
    req: &Req,
    timeout: Duration,
) -> Result<Resp, CallError> {
    match tokio::time::timeout(timeout, send(conn, req)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(CallError::NotSent(e.to_string())),
        Err(_) => return Err(CallError::NoReply("send timed out".into())),
    }
    match tokio::time::timeout(timeout, recv(conn)).await {
        Ok(Ok(Some(resp))) => Ok(resp),
        Ok(Ok(None)) => Err(CallError::NoReply("connection closed".into())),
        Ok(Err(e)) => Err(CallError::NoReply(e.to_string())),
        Err(_) => Err(CallError::NoReply("timed out".into())),
    }
}
