//! The object store port over turmoil TCP. Puts upload in parts of at most
//! [`PART_SIZE`] bytes and complete at the end, so a large object is visible
//! only once fully uploaded.

use super::REQUEST_TIMEOUT;
use crate::servers::store::{StoreRequest, StoreResponse, PORT};
use crate::wire::{self, CallError};
use async_trait::async_trait;
use pitfall_ports::{Blob, ObjectStore, StoreError};

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
    /// The parts go one by one, each a slice of `data` (a view, for
    /// generated content).
    async fn put(&self, key: &str, data: Blob) -> Result<(), StoreError> {
        let mut conn = self.connect().await?;
        for start in (0..data.len()).step_by(PART_SIZE) {
            let part = data.slice(start..(start + PART_SIZE).min(data.len()));
            let req = StoreRequest::Part {
                key: key.into(),
                data: part,
            };
            Self::call(&mut conn, &req).await?;
        }
        let complete = StoreRequest::Complete { key: key.into() };
        Self::call(&mut conn, &complete).await.map(drop)
    }

    async fn get(&self, key: &str) -> Result<Option<Blob>, StoreError> {
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
