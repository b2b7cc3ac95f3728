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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreResponse {
    Done,
    Object(#[serde(with = "serde_bytes")] Option<Vec<u8>>),
    Keys(Vec<String>),
    Error(String),
}

/// Durable objects.
#[derive(Debug, Default)]
pub struct StoreState {
    objects: BTreeMap<String, Vec<u8>>,
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
        let mut uploads: BTreeMap<String, Vec<u8>> = BTreeMap::new();
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
                    uploads.entry(key).or_default().extend_from_slice(&data);
                    StoreResponse::Done
                }
                StoreRequest::Complete { key } => {
                    let data = uploads.remove(&key).unwrap_or_default();
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
            s.objects.insert(k.into(), vec![]);
        }
        assert_eq!(s.keys("b/"), vec!["b/1".to_string(), "b/2".to_string()]);
        assert_eq!(s.keys(""), vec!["a/1", "b/1", "b/2", "c"]);
    }
}
