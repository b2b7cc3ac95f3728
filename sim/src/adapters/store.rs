//! The object store port over turmoil TCP. Puts upload in parts of at most
//! [`PART_SIZE`] bytes and complete at the end, so a large object is visible
//! only once fully uploaded.

use super::REQUEST_TIMEOUT;
use crate::servers::store::{StoreRequest, StoreRequestRef, StoreResponse, PORT};
use crate::wire::{self, CallError};
use async_trait::async_trait;
use pitfall_ports::{ObjectStore, StoreError};

pub const PART_SIZE: usize = 1 << 20;

pub struct SimStore {
    addr: String,
}

impl SimStore {
    pub fn new(host: &str) -> Self {
        SimStore {
            addr: format!("{host}:{PORT}"),
        }
    }

    async fn connect(&self) -> Result<wire::Conn, StoreError> {
        wire::connect(&self.addr, REQUEST_TIMEOUT)
            .await
            .map_err(unavailable)
    }

    /// One request on `conn` and its reply; the server's error as an error.
    async fn call(
        conn: &mut wire::Conn,
        req: &(impl serde::Serialize + Sync),
    ) -> Result<StoreResponse, StoreError> {
        match wire::call(conn, req, REQUEST_TIMEOUT).await {
            Ok(StoreResponse::Error(e)) => Err(StoreError::Other(e)),
            Ok(resp) => Ok(resp),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn exchange(&self, req: StoreRequest) -> Result<StoreResponse, StoreError> {
        Self::call(&mut self.connect().await?, &req).await
    }
}

fn unavailable(e: CallError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

#[async_trait]
impl ObjectStore for SimStore {
    /// The parts go one by one from `data`, each sent from a borrowed
    /// slice (the frames are those of `StoreRequest::Part`).
    async fn put(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        let mut conn = self.connect().await?;
        for part in data.chunks(PART_SIZE) {
            Self::call(&mut conn, &StoreRequestRef::Part { key, data: part }).await?;
        }
        Self::call(&mut conn, &StoreRequestRef::Complete { key })
            .await
            .map(drop)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.exchange(StoreRequest::Get { key: key.into() }).await? {
            StoreResponse::Object(o) => Ok(o),
            other => Err(StoreError::Other(format!("unexpected reply {other:?}"))),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        match self
            .exchange(StoreRequest::List {
                prefix: prefix.into(),
            })
            .await?
        {
            StoreResponse::Keys(k) => Ok(k),
            other => Err(StoreError::Other(format!("unexpected reply {other:?}"))),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.exchange(StoreRequest::Delete { key: key.into() })
            .await
            .map(drop)
    }
}
