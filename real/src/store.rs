//! The object store port through the object_store crate: a local folder by
//! default, S3 (or any store object_store parses) by URL. A local folder has
//! no network to put a proxy in, so the fault plan's object-store faults
//! (outage, slow) are injected in this adapter instead.

use async_trait::async_trait;
use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore as Store, ObjectStoreExt, PutPayload};
use pitfall_harness::history::{Event, History};
use pitfall_harness::seed::SimRng;
use pitfall_ports::{Blob, ObjectStore, StoreError};
use rand::Rng;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Faults injected in the adapter.
#[derive(Debug)]
pub struct StoreFaults {
    pub down: bool,
    /// Each operation is delayed by a uniform draw from this range.
    pub delay_ms: Option<(u64, u64)>,
    rng: SimRng,
}

impl Default for StoreFaults {
    fn default() -> Self {
        StoreFaults {
            down: false,
            delay_ms: None,
            rng: pitfall_harness::seed::rng(0, "store-faults"),
        }
    }
}

impl StoreFaults {
    fn delay(&mut self) -> Option<Duration> {
        let (lo, hi) = self.delay_ms?;
        Some(Duration::from_millis(self.rng.random_range(lo..=hi)))
    }
}

pub type SharedStoreFaults = Arc<Mutex<StoreFaults>>;

/// Open the store behind a URL (`file:///abs/path`, `s3://bucket/prefix`, …).
/// An S3 store takes its credentials, region and endpoint (for MinIO and
/// other S3-compatible stores) from the usual `AWS_*` environment variables.
pub fn open(url: &str) -> Result<(Arc<dyn Store>, Path), String> {
    let aws_options = std::env::vars().filter(|(k, _)| k.starts_with("AWS_"));
    let parsed = object_store::parse_url_opts(
        &url.parse()
            .map_err(|e| format!("bad object store URL {url:?}: {e}"))?,
        aws_options.map(|(k, v)| (k.to_ascii_lowercase(), v)),
    )
    .map_err(|e| format!("cannot open object store {url:?}: {e}"))?;
    Ok((Arc::from(parsed.0), parsed.1))
}

pub struct RealStore {
    store: Arc<dyn Store>,
    root: Path,
    faults: SharedStoreFaults,
    history: History,
    process: String,
}

impl RealStore {
    /// Keys live under `root/folder/`.
    pub fn new(
        store: Arc<dyn Store>,
        root: &Path,
        folder: &str,
        faults: SharedStoreFaults,
        history: History,
        process: &str,
    ) -> Self {
        RealStore {
            store,
            root: root.clone().join(folder),
            faults,
            history,
            process: process.to_string(),
        }
    }

    fn path(&self, key: &str) -> Path {
        key.split('/')
            .filter(|p| !p.is_empty())
            .fold(self.root.clone(), |p, part| p.join(part))
    }

    async fn gate(&self) -> Result<(), StoreError> {
        let (down, delay) = {
            let mut f = self.faults.lock().unwrap();
            (f.down, f.delay())
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if down {
            return Err(StoreError::Unavailable(
                "object store outage (injected)".into(),
            ));
        }
        Ok(())
    }
}

fn err(e: object_store::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

#[async_trait]
impl ObjectStore for RealStore {
    async fn put(&self, key: &str, data: Blob) -> Result<(), StoreError> {
        self.gate().await?;
        let size = data.len();
        self.store
            .put(&self.path(key), PutPayload::from(data.bytes()))
            .await
            .map_err(err)?;
        self.history.record(Event::ObjectPut {
            process: self.process.clone(),
            key: key.to_string(),
            size,
        });
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Blob>, StoreError> {
        self.gate().await?;
        let object = match self.store.get(&self.path(key)).await {
            Ok(r) => Some(Blob::from(r.bytes().await.map_err(err)?)),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(err(e)),
        };
        self.history.record(Event::ObjectGet {
            process: self.process.clone(),
            key: key.to_string(),
            found: object.is_some(),
        });
        Ok(object)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.gate().await?;
        let mut keys = Vec::new();
        let mut stream = self.store.list(Some(&self.root));
        while let Some(meta) = stream.next().await {
            let meta = meta.map_err(err)?;
            let Some(parts) = meta.location.prefix_match(&self.root) else {
                continue;
            };
            let key = parts
                .map(|p| p.as_ref().to_string())
                .collect::<Vec<_>>()
                .join("/");
            if key.starts_with(prefix) {
                keys.push(key);
            }
        }
        keys.sort();
        Ok(keys)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.gate().await?;
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(err(e)),
        }
        self.history.record(Event::ObjectDelete {
            process: self.process.clone(),
            key: key.to_string(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::open;

    #[test]
    fn opens_a_local_folder_and_an_s3_bucket_by_url() {
        let (_, root) = open("file:///tmp/pitfall-objects/x").unwrap();
        assert_eq!(root.as_ref(), "tmp/pitfall-objects/x");
        // Building an S3 client does not reach the network.
        let (store, root) = open("s3://pitfall-bucket/runs").unwrap();
        assert_eq!(root.as_ref(), "runs");
        assert!(store.to_string().contains("pitfall-bucket"), "{store}");
        let err = open("nope://x").unwrap_err();
        assert!(err.contains("nope://x"), "{err}");
    }
}
