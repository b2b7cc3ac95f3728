//! The simulated object store (S3 semantics): put, get, list, delete. Large
//! objects are uploaded in parts over one connection and become visible only
//! when the upload completes; a connection lost mid-upload leaves nothing.

use super::{before_request, peer_name, SharedFaults};
use crate::wire;
use pitfall_harness::history::{Event, History};
use pitfall_ports::Blob;
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
        data: Blob,
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreResponse {
    Done,
    Object(Option<Blob>),
    Keys(Vec<String>),
    Error(String),
}

/// Durable objects, shared with the replies that carry them.
#[derive(Debug, Default)]
pub struct StoreState {
    objects: BTreeMap<String, Blob>,
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
        let mut uploads: BTreeMap<String, Vec<Blob>> = BTreeMap::new();
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
                    // Parts of a view of generated content join into one
                    // view again: the object is kept without its bytes.
                    let data = Blob::concat(uploads.remove(&key).unwrap_or_default());
                    let size = data.len();
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
                    StoreResponse::Object(object)
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
            s.objects.insert(k.into(), Blob::default());
        }
        assert_eq!(s.keys("b/"), vec!["b/1".to_string(), "b/2".to_string()]);
        assert_eq!(s.keys(""), vec!["a/1", "b/1", "b/2", "c"]);
    }

    /// An object of generated content uploaded in parts is kept as its
    /// view: the parts join without their bytes being made.
    #[test]
    fn parts_of_a_view_are_kept_as_the_view() {
        let object = Blob::generated(3, 5 << 20);
        let parts: Vec<Blob> = (0..5)
            .map(|i| object.slice(i << 20..(i + 1) << 20))
            .collect();
        let frames: Vec<Vec<u8>> = parts
            .iter()
            .map(|data| {
                encode(&StoreRequest::Part {
                    key: "k".into(),
                    data: data.clone(),
                })
            })
            .collect();
        assert!(
            frames.iter().all(|f| f.len() < 200),
            "a view's part is a few numbers"
        );
        let received = frames
            .iter()
            .map(|f| match rmp_serde::from_slice(f).unwrap() {
                StoreRequest::Part { data, .. } => data,
                other => panic!("{other:?}"),
            });
        assert_eq!(Blob::concat(received).view(), object.view());
    }

    /// What `wire::send` puts in a frame.
    fn encode<T: Serialize>(message: &T) -> Vec<u8> {
        rmp_serde::to_vec_named(message).unwrap()
    }
}
