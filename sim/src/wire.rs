//! The wire format between simulated services and simulated servers:
//! length-delimited frames of MessagePack over turmoil TCP, one request →
//! one reply. Bytes (record values, objects) travel as MessagePack binary,
//! not as text: a 20 MiB attachment is copied into its frame, not base64
//! encoded, escaped and decoded.

use bytes::{BufMut, BytesMut};
use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io;
use std::time::Duration;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use turmoil::net::TcpStream;

/// Frames up to this size: large enough for the biggest simulated payloads.
const MAX_FRAME: usize = 64 << 20;

/// The frame's length prefix: `LengthDelimitedCodec`'s default, a
/// big-endian `u32`.
const LENGTH_BYTES: usize = 4;

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

/// Send `msg` as one frame. It is encoded straight into the connection's
/// write buffer, behind a length prefix written once the length is known,
/// so a large record is copied once on its way to the socket (not into a
/// growing `Vec`, and then again into the codec's buffer).
pub async fn send<T: Serialize>(conn: &mut Conn, msg: &T) -> io::Result<()> {
    encode_frame(conn.write_buffer_mut(), msg)?;
    FRAMES_SENT.with(|n| n.set(n.get() + 1));
    SinkExt::<bytes::Bytes>::flush(conn).await
}

/// Append `msg` to `buf` as a frame that [`LengthDelimitedCodec`] (with the
/// settings of [`framed`]) reads back: a big-endian `u32` length, then the
/// MessagePack. On an error `buf` is as it was.
fn encode_frame<T: Serialize>(buf: &mut BytesMut, msg: &T) -> io::Result<()> {
    let frame_at = buf.len();
    buf.put_u32(0);
    // With field names: the messages use internally tagged enums and
    // optional fields, which need a self-describing encoding.
    let written = rmp_serde::encode::write_named(&mut buf.writer(), msg);
    let length = buf.len() - frame_at - LENGTH_BYTES;
    let failure = match written {
        Err(e) => Some(io::Error::other(e)),
        Ok(()) if length > MAX_FRAME => Some(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a frame of {length} bytes is over the maximum of {MAX_FRAME}"),
        )),
        Ok(()) => None,
    };
    if let Some(e) = failure {
        buf.truncate(frame_at);
        return Err(e);
    }
    let length = u32::try_from(length).expect("MAX_FRAME fits in the length field");
    buf[frame_at..frame_at + LENGTH_BYTES].copy_from_slice(&length.to_be_bytes());
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::codec::Decoder;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Message {
        name: String,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    }

    fn message(data_bytes: usize) -> Message {
        Message {
            name: "m".into(),
            data: vec![0xA5; data_bytes],
        }
    }

    /// Frames appended one after another come back, in order, as the
    /// messages, through the codec `recv` reads with.
    #[test]
    fn frames_decode_with_the_length_delimited_codec() {
        let sent = [message(3), message(200_000), message(0)];
        let mut buf = BytesMut::from(&b"earlier"[..]);
        for m in &sent {
            encode_frame(&mut buf, m).unwrap();
        }
        let _ = buf.split_to("earlier".len());
        let mut codec = LengthDelimitedCodec::builder()
            .max_frame_length(MAX_FRAME)
            .new_codec();
        for m in &sent {
            let frame = codec.decode(&mut buf).unwrap().expect("a whole frame");
            assert_eq!(rmp_serde::from_slice::<Message>(&frame).unwrap(), *m);
        }
        assert!(buf.is_empty());
    }

    /// A frame over the maximum is refused and leaves the buffer as it was.
    #[test]
    fn a_frame_over_the_maximum_is_refused_and_not_written() {
        let mut buf = BytesMut::from(&b"earlier"[..]);
        let error = encode_frame(&mut buf, &message(MAX_FRAME)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(error.to_string().contains("over the maximum"), "{error}");
        assert_eq!(&buf[..], b"earlier");
    }
}
