//! Request/response calls between hosts: a host's front door
//! ([`RpcListener`]) and a client of others' ([`RpcClient`]). Bodies are
//! JSON; [`call`] and [`serve`] add the types. The simulation carries them
//! over turmoil TCP, real mode over in-process channels; partitions and
//! crashes cut them in both.

use async_trait::async_trait;
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::future::Future;
use std::time::Duration;
use tokio::sync::oneshot;

/// Why a call got no answer.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The request never reached the service: it did not happen.
    #[error("not sent: {0}")]
    NotSent(String),
    /// The request may have reached the service, but no answer came back:
    /// whether it happened is unknown.
    #[error("no reply: {0}")]
    NoReply(String),
}

/// One request at a front door, with the slot for its reply.
pub struct Request {
    pub body: Value,
    reply: oneshot::Sender<Value>,
}

impl Request {
    pub fn new(body: Value) -> (Request, oneshot::Receiver<Value>) {
        let (reply, rx) = oneshot::channel();
        (Request { body, reply }, rx)
    }

    /// Answer the request; an answer to a caller that went away is dropped.
    pub fn reply(self, body: Value) {
        let _ = self.reply.send(body);
    }
}

/// A host's front door.
#[async_trait]
pub trait RpcListener: Send {
    /// The next request; `None` once the door is closed for good.
    async fn next(&mut self) -> Option<Request>;
}

/// A client of other hosts' front doors.
#[async_trait]
pub trait RpcClient: Send + Sync {
    async fn call(&self, host: &str, body: Value, timeout: Duration) -> Result<Value, CallError>;
}

/// Call `host` with a typed request and decode its typed reply. A reply
/// that does not decode counts as no reply.
pub async fn call<Q: Serialize, R: DeserializeOwned>(
    rpc: &dyn RpcClient,
    host: &str,
    request: &Q,
    timeout: Duration,
) -> Result<R, CallError> {
    let body = serde_json::to_value(request).map_err(|e| CallError::NotSent(e.to_string()))?;
    let reply = rpc.call(host, body, timeout).await?;
    serde_json::from_value(reply).map_err(|e| CallError::NoReply(format!("bad reply: {e}")))
}

/// Serve a front door: each request is decoded and handled concurrently
/// with the others, and answered when its handler finishes, whether or not
/// the caller still waits. A request that does not decode is dropped (its
/// caller sees no reply). Runs until the door closes and every handler has
/// finished.
pub async fn serve<Q, R, F, Fut>(mut listener: Box<dyn RpcListener>, handle: F)
where
    Q: DeserializeOwned,
    R: Serialize,
    F: Fn(Q) -> Fut,
    Fut: Future<Output = R>,
{
    let mut running = FuturesUnordered::new();
    let mut open = true;
    loop {
        tokio::select! {
            request = listener.next(), if open => match request {
                None => open = false,
                Some(request) => match serde_json::from_value::<Q>(request.body.clone()) {
                    Ok(q) => {
                        let handler = handle(q);
                        running.push(async move {
                            let reply = handler.await;
                            let body = serde_json::to_value(reply).expect("replies serialize");
                            request.reply(body);
                        });
                    }
                    Err(e) => tracing::warn!(error = %e, "rpc: undecodable request dropped"),
                },
            },
            Some(()) = running.next(), if !running.is_empty() => {}
            else => return,
        }
    }
}
