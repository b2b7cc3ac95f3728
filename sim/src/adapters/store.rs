//! The object store port over turmoil TCP. Puts upload in parts of at most
//! [`PART_SIZE`] bytes and complete at the end, so a large object is visible
//! only once fully uploaded.

use super::REQUEST_TIMEOUT;
use crate::servers::store::{StoreRequest, StoreResponse, PORT};
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

    async fn exchange(&self, reqs: Vec<StoreRequest>) -> Result<StoreResponse, StoreError> {
        let err = |e: CallError| StoreError::Unavailable(e.to_string());
        let mut conn = wire::connect(&self.addr, REQUEST_TIMEOUT)
            .await
            .map_err(err)?;
        let mut last = StoreResponse::Done;
        for req in reqs {
            last = wire::call(&mut conn, &req, REQUEST_TIMEOUT)
                .await
                .map_err(err)?;
            if let StoreResponse::Error(e) = last {
                return Err(StoreError::Other(e));
            }
        }
        Ok(last)
    }
}

#[async_trait]
impl ObjectStore for SimStore {
    async fn put(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        let mut reqs: Vec<StoreRequest> = data
            .chunks(PART_SIZE)
            .map(|c| StoreRequest::Part {
                key: key.into(),
                data: c.to_vec(),
            })
            .collect();
        reqs.push(StoreRequest::Complete { key: key.into() });
        self.exchange(reqs).await.map(drop)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self
            .exchange(vec![StoreRequest::Get { key: key.into() }])
            .await?
        {
            StoreResponse::Object(o) => Ok(o),
            other => Err(StoreError::Other(format!("unexpected reply {other:?}"))),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        match self
            .exchange(vec![StoreRequest::List {
                prefix: prefix.into(),
            }])
            .await?
        {
            StoreResponse::Keys(k) => Ok(k),
            other => Err(StoreError::Other(format!("unexpected reply {other:?}"))),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.exchange(vec![StoreRequest::Delete { key: key.into() }])
            .await
            .map(drop)
    }
}
