//! Hosts' front doors over turmoil TCP: a listener on [`PORT`] that hands
//! each request frame to the host's software and writes its reply back, and
//! a client that calls `<host>:PORT`. Partitions and crashes cut them like
//! any other connection; the door's own fault switch (the `api-*` faults)
//! refuses calls, delays them, or loses a reply after the host acted.

use crate::servers::{before_request, SharedFaults};
use crate::wire::{self, CallError};
use async_trait::async_trait;
use pitfall_harness::history::History;
use pitfall_harness::rpc::{Request, RpcClient, RpcListener};
use pitfall_ports::coverage;
use serde_json::Value;
use std::time::Duration;
use tokio::sync::mpsc;
use turmoil::net::{TcpListener, TcpStream};

/// The port every host's front door listens on.
pub const PORT: u16 = 8080;

/// A host's front door. Its tasks run on the host, so a crash closes it.
pub struct SimListener {
    requests: mpsc::Receiver<Request>,
}

/// The door's fault switch, and where it marks a lost reply.
#[derive(Clone)]
pub struct Door {
    pub host: String,
    pub faults: SharedFaults,
    pub history: History,
}

impl SimListener {
    /// Open the door; must be called on the host.
    pub fn open(door: Door) -> SimListener {
        let (tx, requests) = mpsc::channel(64);
        tokio::task::spawn_local(accept(tx, door));
        SimListener { requests }
    }
}

async fn accept(tx: mpsc::Sender<Request>, door: Door) {
    let listener = TcpListener::bind(("0.0.0.0", PORT))
        .await
        .expect("the front door's port is free on its host");
    while let Ok((stream, _)) = listener.accept().await {
        tokio::task::spawn_local(connection(stream, tx.clone(), door.clone()));
    }
}

/// One caller's connection: each request in turn, answered when the host's
/// software replies. A door that is down drops the connection unanswered; a
/// lost reply drops it after the host acted.
async fn connection(stream: TcpStream, tx: mpsc::Sender<Request>, door: Door) {
    let mut conn = wire::framed(stream);
    while let Ok(Some(body)) = wire::recv::<Value>(&mut conn).await {
        if !before_request(&door.faults).await {
            return;
        }
        let (request, reply) = Request::new(body);
        if tx.send(request).await.is_err() {
            return;
        }
        let Ok(reply) = reply.await else { return };
        if door.faults.lock().unwrap().lose_ack() {
            door.history.mark(&door.host, coverage::CALL_REPLY_LOST);
            return;
        }
        if wire::send(&mut conn, &reply).await.is_err() {
            return;
        }
    }
}

#[async_trait]
impl RpcListener for SimListener {
    async fn next(&mut self) -> Option<Request> {
        self.requests.recv().await
    }
}

/// Calls other hosts' front doors.
pub struct SimRpc;

#[async_trait]
impl RpcClient for SimRpc {
    async fn call(&self, host: &str, body: Value, timeout: Duration) -> Result<Value, CallError> {
        let mut conn = wire::connect(&format!("{host}:{PORT}"), timeout).await?;
        wire::call(&mut conn, &body, timeout).await
    }
}
