//! The object store port (S3 semantics): put, get, list, delete. An object
//! becomes visible only once its whole upload has completed.

use crate::Blob;
use async_trait::async_trait;

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StoreError {
    #[error("object store unavailable: {0}")]
    Unavailable(String),
    #[error("object store error: {0}")]
    Other(String),
}

#[async_trait]
pub trait ObjectStore: Send + Sync {
    async fn put(&self, key: &str, data: Blob) -> Result<(), StoreError>;
    async fn get(&self, key: &str) -> Result<Option<Blob>, StoreError>;
    /// Keys with this prefix, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
}
