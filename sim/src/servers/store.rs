//! The simulated object store (S3 semantics): put, get, list, delete. Large
//! objects are uploaded in parts over one connection and become visible only
//! when the upload completes; a connection lost mid-upload leaves nothing.

use super::{before_request, peer_name, SharedFaults};
use crate::wire;
use pitfall_harness::history::{Event, History};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use turmoil::net::TcpListener;

pub const PORT: u16 = 9000;
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum StoreRequest {
    /// Append a part to this connection's pending upload of `key`.
    Part {
        key: String,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Make the pending upload of `key` visible.
    Complete {
        key: String,
    },
    Get {
        key: String,
    },
    List {
        prefix: String,
    },
    Delete {
        key: String,
    },
}

/// The start of [`StoreRequest`] as a client sends it, borrowing what it
/// sends: encoded exactly as `StoreRequest` (same tag, variants and
/// fields), so a part goes out without being copied first.
#[derive(Debug, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum StoreRequestRef<'a> {
    Part {
        key: &'a str,
        #[serde(with = "serde_bytes")]
        data: &'a [u8],
    },
    Complete {
        key: &'a str,
    },
}

/// The start of [`StoreResponse`] as the server sends an object, borrowing
/// it: encoded exactly as `StoreResponse` (same variants in the same order).
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
enum StoreResponseRef<'a> {
    #[allow(dead_code)] // only here to keep the variants' order
    Done,
    Object(#[serde(with = "serde_bytes")] Option<&'a [u8]>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreResponse {
    Done,
    Object(#[serde(with = "serde_bytes")] Option<Vec<u8>>),
    Keys(Vec<String>),
    Error(String),
}

/// Durable objects, shared with the replies that carry them.
#[derive(Debug, Default)]
pub struct StoreState {
    objects: BTreeMap<String, Arc<Vec<u8>>>,
}

impl StoreState {
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

#[derive(Clone)]
pub struct StoreServer {
    pub state: Arc<Mutex<StoreState>>,
    pub faults: SharedFaults,
    pub history: History,
}

impl StoreServer {
    pub async fn serve(self) -> turmoil::Result {
        let listener = TcpListener::bind(("0.0.0.0", PORT)).await?;
        loop {
            let (stream, peer) = listener.accept().await?;
            if self.faults.lock().unwrap().down {
                drop(stream);
                continue;
            }
            let server = self.clone();
            tokio::task::spawn_local(async move {
                server
                    .connection(wire::framed(stream), peer_name(peer))
                    .await;
            });
        }
    }

    async fn connection(&self, mut conn: wire::Conn, process: String) {
        // Each pending upload's parts, joined once when it completes.
        let mut uploads: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        loop {
            let req: StoreRequest =
                match tokio::time::timeout(IDLE_TIMEOUT, wire::recv(&mut conn)).await {
                    Ok(Ok(Some(req))) => req,
                    _ => return,
                };
            if !before_request(&self.faults).await {
                return;
            }
            let resp = match req {
                StoreRequest::Part { key, data } => {
                    uploads.entry(key).or_default().push(data);
                    StoreResponse::Done
                }
                StoreRequest::Complete { key } => {
                    let data = uploads.remove(&key).unwrap_or_default().concat();
                    let size = data.len();
                    let data = Arc::new(data);
                    self.state.lock().unwrap().objects.insert(key.clone(), data);
                    self.history.record(Event::ObjectPut {
                        process: process.clone(),
                        key,
                        size,
                    });
                    StoreResponse::Done
                }
                StoreRequest::Get { key } => {
                    let object = self.state.lock().unwrap().objects.get(&key).cloned();
                    self.history.record(Event::ObjectGet {
                        process: process.clone(),
                        key,
                        found: object.is_some(),
                    });
                    let reply = StoreResponseRef::Object(object.as_deref().map(Vec::as_slice));
                    if wire::send(&mut conn, &reply).await.is_err() {
                        return;
                    }
                    continue;
                }
                StoreRequest::List { prefix } => {
                    StoreResponse::Keys(self.state.lock().unwrap().keys(&prefix))
                }
                StoreRequest::Delete { key } => {
                    if self.state.lock().unwrap().objects.remove(&key).is_some() {
                        self.history.record(Event::ObjectDelete {
                            process: process.clone(),
                            key,
                        });
                    }
                    StoreResponse::Done
                }
            };
            if wire::send(&mut conn, &resp).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_sorted_and_prefix_bounded() {
        let mut s = StoreState::default();
        for k in ["b/2", "a/1", "b/1", "c"] {
            s.objects.insert(k.into(), Arc::default());
        }
        assert_eq!(s.keys("b/"), vec!["b/1".to_string(), "b/2".to_string()]);
        assert_eq!(s.keys(""), vec!["a/1", "b/1", "b/2", "c"]);
    }

    /// The borrowing forms go over the wire as the owned ones do: a server
    /// reading `StoreRequest` and a client reading `StoreResponse` see the
    /// same frames.
    #[test]
    fn borrowed_messages_encode_as_the_owned_ones() {
        let data = b"part of an object".to_vec();
        assert_eq!(
            encode(&StoreRequestRef::Part {
                key: "payloads/o-1",
                data: &data
            }),
            encode(&StoreRequest::Part {
                key: "payloads/o-1".into(),
                data: data.clone()
            })
        );
        assert_eq!(
            encode(&StoreRequestRef::Complete { key: "k" }),
            encode(&StoreRequest::Complete { key: "k".into() })
        );
        assert_eq!(
            encode(&StoreResponseRef::Object(Some(&data))),
            encode(&StoreResponse::Object(Some(data.clone())))
        );
        assert_eq!(
            encode(&StoreResponseRef::Object(None)),
            encode(&StoreResponse::Object(None))
        );
        assert_ne!(
            encode(&StoreResponseRef::Object(None)),
            encode(&StoreResponse::Done)
        );
    }

    /// What `wire::send` puts in a frame.
    fn encode<T: Serialize>(message: &T) -> Vec<u8> {
        rmp_serde::to_vec_named(message).unwrap()
    }
}
